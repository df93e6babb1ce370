// What other features use of profiles: the service, facets for search, ratings' average.
export { createProfilesService, canonicalLanguages, type ProfilesService } from './service.js'
export { averageOf, type Facets } from './store.js'
export { Rating } from './schemas.js'
