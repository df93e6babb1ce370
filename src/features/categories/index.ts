// What other features use of categories: the service (checks, the tree) and the view of one.
export { createCategoriesService, toCategoryView, type CategoriesService } from './service.js'
export type { CategoryRow } from './store.js'
