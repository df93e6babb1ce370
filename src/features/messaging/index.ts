// What other features may use of messaging: its service and the pieces a statement of theirs
// needs to store messages with its own change (jobs' moves write their system messages so).
export { createMessagingService, type MessagingService } from './service.js'
export { insertMessages, messagesWrite, newMessageRow, type MessageRow, type NewMessage, type ParticipantRow, type SenderRow } from './store.js'
