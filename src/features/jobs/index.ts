// What the composition root uses of jobs: its service, its store and the live map's locator.
export { createJobsService, type JobsService } from './service.js'
export { createJobsStore } from './store.js'
export { createWorkerLocator } from './locator.js'
export { Job, Money, PaymentStatusSchema } from './schemas.js'
export { view as jobView, paymentOf as jobPaymentView } from './view.js'
export { PAYMENT_STATUSES, type JobRow, type PaymentStatus } from './store.js'
