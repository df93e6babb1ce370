// Live job tracking: a worker's exact position shared with one job's client.
export { createTrackingService, type TrackingService } from './service.js'
export { createTrackingStore } from './store.js'
