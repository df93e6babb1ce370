// What other features may use of mail: queueing one in their own transaction.
export { createMailService, type MailService } from './service.js'
export { renderMail, type MailParts } from '../../platform/mail/templates.js'
export type { MailMessage } from '../../platform/mail/index.js'
