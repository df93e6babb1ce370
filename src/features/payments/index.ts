// What the composition root uses of payments: its service and its store.
export { createPaymentsService, type PaymentsService } from './service.js'
export { createPaymentsStore } from './store.js'
export { Declined } from './schemas.js'
