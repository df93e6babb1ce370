// What other features may use of location: its service, and how a user is put on the map (the
// seed command writes many at once, straight to the live store).
export { blurPosition, cardOf, createLocationService, type LocationService } from './service.js'
