// What other features use of reviews: the service (reports name reviews, admins hide them).
export { createReviewsService, REVIEW_WINDOW_MS, type ReviewsService } from './service.js'
export type { ReviewRow } from './store.js'
