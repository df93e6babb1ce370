// Job alerts: who an open request reaches (the live map and saved alerts), and the saved alerts.
export { createAlertsService, type AlertsService } from './service.js'
export { createAlertsStore } from './store.js'
