// What other features may use of messaging: its service, a message as shown, how many messages a
// socket catching up replays, and the pieces a statement of theirs needs to store messages with
// its own change (jobs' moves write their system messages so).
export { createMessagingService, REPLAY_LIMIT, type MessagingService } from './service.js'
export type { MessageView } from './schemas.js'
export { createMessagingStore, insertMessages, messagesWrite, newMessageRow, type MessageRow, type NewMessage, type MessagingStore, type ParticipantRow, type SenderRow } from './store.js'
