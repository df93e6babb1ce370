// Notifications by channel (in-app, email, Web Push, SMS), with each user's preferences.
export { createNotificationsService, type NotificationsService } from './service.js'
export { createNotificationsStore } from './store.js'
export { createPushStore, loadVapidKeys } from './push.js'
export { logOnlySmsProvider, type SmsProvider, type SmsMessage } from './sms.js'
export type { MailMessage, NotificationMail } from './mail.js'
