// What other features may use of location: its service.
export { createLocationService, type LocationService } from './service.js'
