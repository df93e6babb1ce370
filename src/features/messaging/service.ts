import { createHash } from 'node:crypto'
import type { Transaction } from 'kysely'
import { Type } from 'typebox'
import { v7 as uuidv7 } from 'uuid'
import { ConflictError, ForbiddenError, InvalidInputError, NotFoundError, TooManyRequestsError } from '../../errors.js'
import { decodeCursor, pageOf } from '../../http/cursor.js'
import type { CounterStore, LiveStore } from '../../platform/live/index.js'
import type { AccountsService } from '../accounts/index.js'
import type { Clock } from '../../platform/clock.js'
import type { Database } from '../../platform/db/index.js'
import { MAX_TEXT_CHARS, type MessageView } from './schemas.js'
import type { MessageRow, MessagingStore, SenderRow } from './store.js'

export interface MessagingDeps {
  store: MessagingStore
  live: LiveStore
  /** The counters of the per-user send limit (the rate limits' own, counted in this process first). */
  sendLimits: CounterStore
  /** A user as any user may see it (the accounts feature's): a message's sender, a thread's peer. */
  summary: AccountsService['summary']
  /** Messages a minute one user may send. */
  sendRateLimit: number
  clock: Clock
}

const MessageCursor = Type.Object({ id: Type.String({ format: 'uuid' }) })
const ConversationCursor = Type.Object({ last: Type.String({ format: 'uuid' }), peer: Type.String({ format: 'uuid' }) })

const MINUTE_MS = 60_000
const IDEMPOTENCY_TTL_MS = 24 * 3_600_000
/** Messages replayed at most on a socket's `?since=`; past it the client pages GET /inbox. */
export const REPLAY_LIMIT = 500

/** When a message id (a UUIDv7) was made: its first 48 bits; undefined for another kind of id. */
function timeOfId(id: string): Date | undefined {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-7/i.test(id)) return undefined
  return new Date(parseInt(id.replace(/-/g, '').slice(0, 12), 16))
}

export function createMessagingService(deps: MessagingDeps) {
  const { store, live } = deps

  const { summary } = deps

  const viewOf = (row: MessageRow, users: Map<string, SenderRow>): MessageView => ({
    id: row.id,
    from: row.sender_id,
    to: row.recipient_id,
    text: row.text,
    kind: row.kind,
    job_id: row.job_id,
    created_at: row.created_at.toISOString(),
    read_at: row.read_at ? row.read_at.toISOString() : null,
    sender: row.sender_id ? summary(users.get(row.sender_id), row.sender_id) : null,
  })

  const usersOf = async (ids: (string | null)[]) =>
    new Map((await store.participants(ids.filter((id): id is string => id !== null))).map((u) => [u.id, u]))

  /** Messages as answered, their senders looked up in one query. */
  const views = async (rows: MessageRow[]): Promise<MessageView[]> => {
    const users = await usersOf(rows.map((r) => r.sender_id))
    return rows.map((row) => viewOf(row, users))
  }

  /** Pushes messages (already committed) to their recipients, and to the sender's other devices. */
  const publishViews = async (viewed: MessageView[]) => {
    await Promise.all(
      viewed.map((message) => {
        const to = message.from && message.from !== message.to ? [message.to, message.from] : [message.to]
        return live.events.publish({ to, type: 'message.created', data: message })
      }),
    )
  }

  /** Pushes stored messages; `senders` the caller has at hand spare reading them again. */
  const publishCreated = async (messages: MessageRow[], senders: SenderRow[] = []): Promise<void> => {
    if (messages.length === 0) return
    const known = new Map(senders.map((u) => [u.id, u]))
    const missing = messages.map((m) => m.sender_id).filter((id): id is string => id !== null && !known.has(id))
    const users = missing.length > 0 ? new Map([...known, ...(await usersOf(missing))]) : known
    await publishViews(messages.map((row) => viewOf(row, users)))
  }

  // Idempotency keys are kept a day; older ones are swept now and then (from start() on).
  let sweeper: NodeJS.Timeout | undefined
  const sweep = () => store.sweepIdempotency(new Date(deps.clock.now().getTime() - IDEMPOTENCY_TTL_MS))

  return {
    views,
    publishCreated,

    /** Sends a user's message; with an idempotency key, a retry answers the first message. */
    async send(senderId: string, input: { to: string; text: string }, idempotencyKey?: string): Promise<{ message: MessageView; replayed: boolean }> {
      const text = input.text.trim()
      if (text.length === 0) throw new InvalidInputError('The text is blank', [{ field: 'body/text', message: 'must not be blank' }], 'text_blank')
      if ([...text].length > MAX_TEXT_CHARS) {
        throw new InvalidInputError(`The text is longer than ${MAX_TEXT_CHARS} characters`, [{ field: 'body/text', message: `must be at most ${MAX_TEXT_CHARS} characters` }], 'text_too_long')
      }
      if (input.to === senderId) throw new InvalidInputError('You cannot send a message to yourself', [{ field: 'body/to', message: 'must be another user' }], 'to_self')

      const hit = await deps.sendLimits.hit(`send:${senderId}`, MINUTE_MS)
      if (hit.count > deps.sendRateLimit) {
        throw new TooManyRequestsError(`At most ${deps.sendRateLimit} messages a minute; try again later`, Math.max(1, Math.ceil(hit.resetMs / 1000)), 'send_rate_limited')
      }
      const message = { id: uuidv7(), from: senderId, to: input.to, text, kind: 'user' as const, at: deps.clock.now() }
      const requestHash = idempotencyKey && createHash('sha256').update(JSON.stringify([input.to, text])).digest('base64url')
      // Both users and the blocks between them decide whether it may be sent, read in the
      // transaction that stores it, after holding the pair: a block committed first always wins.
      const context = idempotencyKey
        ? await store.insertIdempotent(senderId, idempotencyKey, requestHash!, message)
        : await store.insertIfAllowed(message)
      const users = new Map(context.users.map((u) => [u.id, u]))
      const recipient = users.get(input.to)
      if (!recipient || recipient.deleted_at) throw new NotFoundError('No such user', 'user_not_found')
      if (context.blockerId) {
        throw context.blockerId === senderId
          ? new ForbiddenError('You blocked this user; unblock them to send', 'recipient_blocked')
          : new ForbiddenError('This user does not accept your messages', 'blocked')
      }
      // Allowed, so stored (or found stored under the key).
      const result = context.stored!
      if (result.created) {
        const view = viewOf(result.message, users)
        await publishViews([view])
        return { message: view, replayed: false }
      }
      if (result.requestHash !== requestHash || !result.message) {
        throw new ConflictError('This Idempotency-Key was used for a different message', 'idempotency_key_reused')
      }
      return { message: (await views([result.message]))[0]!, replayed: true }
    },

    async inbox(userId: string, query: { with?: string; limit?: number; cursor?: string }) {
      const limit = query.limit ?? 20
      const before = decodeCursor(query.cursor, MessageCursor)
      if (query.with === userId) throw new InvalidInputError('A conversation is with another user', [{ field: 'querystring/with', message: 'must be another user' }], 'with_self')
      const [rows, unread] = await Promise.all([
        query.with
          ? store.conversation(userId, query.with, { beforeId: before?.id, limit: limit + 1 })
          : store.inbox(userId, { beforeId: before?.id, limit: limit + 1 }),
        store.unreadCount(userId, query.with),
      ])
      const page = pageOf(rows, limit, (last) => ({ id: last.id }))
      const items = page.items.map((row) => viewOf(row, new Map(row.sender ? [[row.sender.id, row.sender]] : [])))
      return { items, next_cursor: page.next_cursor, unread }
    },

    async conversations(userId: string, query: { limit?: number; cursor?: string }) {
      const limit = query.limit ?? 20
      const before = decodeCursor(query.cursor, ConversationCursor)
      const rows = await store.conversations(userId, { before, limit: limit + 1 })
      const page = pageOf(rows, limit, (last) => ({ last: last.last_message_id, peer: last.peer_id }))
      const [messages, users] = await Promise.all([
        store.messagesById(page.items.map((r) => r.last_message_id)),
        usersOf(page.items.flatMap((r) => [r.peer_id, userId])),
      ])
      const byId = new Map(messages.map((m) => [m.id, m]))
      return {
        items: page.items.map((r) => ({ user: summary(users.get(r.peer_id), r.peer_id), last_message: viewOf(byId.get(r.last_message_id)!, users), unread: r.unread })),
        next_cursor: page.next_cursor,
      }
    },

    /** Marks the user's received messages up to one read; each sender hears of it. */
    async markRead(userId: string, upTo: string, withId?: string): Promise<void> {
      if (!(await store.messageOf(userId, upTo))) throw new NotFoundError('You have no such message', 'message_not_found')
      const { readAt, bySender } = await store.markRead(userId, upTo, deps.clock.now(), withId)
      if (bySender.length === 0) return
      const read_at = readAt.toISOString()
      await Promise.all([
        ...bySender
          .filter((s) => s.sender_id !== null)
          .map((s) => live.events.publish({ to: [s.sender_id!], type: 'message.read', data: { by: userId, up_to: s.up_to, read_at } })),
        // The reader's other devices update their unread counts.
        live.events.publish({ to: [userId], type: 'message.read', data: { by: userId, up_to: upTo, read_at } }),
      ])
    },

    /**
     * The `message.read` events a socket catching up after a message missed: reads of what the
     * user sent, and its own reads on other devices, since that message was sent.
     */
    async readsSince(userId: string, afterId: string) {
      const after = timeOfId(afterId)
      if (!after) return []
      const reads = await store.readsSince(userId, after)
      return reads.map((r) => ({ by: r.by, up_to: r.up_to, read_at: r.read_at.toISOString() }))
    },

    /** What the user sent or received after a message, oldest first, for a socket catching up. */
    async since(userId: string, afterId: string): Promise<MessageView[]> {
      return views(await store.since(userId, afterId, REPLAY_LIMIT))
    },

    /**
     * What a message between two users depends on: both users (deleted ones as tombstones) and
     * which of them blocked the other, if either did. With `trx`, read in that transaction after
     * holding the pair, so that a block committed before is seen and one made meanwhile waits
     * until the transaction ends: what stores a message (a job's offer or edit) reads it so.
     */
    contextOf: (senderId: string, recipientId: string, trx?: Transaction<Database>) =>
      trx ? store.heldContext(trx, senderId, recipientId) : store.sendContext(senderId, recipientId),

    /** A message the user received, if there is one of that id (a report names one). */
    async received(userId: string, messageId: string): Promise<MessageRow | undefined> {
      const message = await store.messageOf(userId, messageId)
      return message?.recipient_id === userId ? message : undefined
    },

    /** An account went: its idempotency keys go with it; its messages stay with others. */
    async forgetUser(userId: string): Promise<void> {
      await store.forgetUser(userId)
    },

    async start() {
      sweeper ??= setInterval(() => void sweep().catch(() => {}), 10 * MINUTE_MS)
      sweeper.unref()
    },

    async close() {
      clearInterval(sweeper)
      sweeper = undefined
    },
  }
}

export type MessagingService = ReturnType<typeof createMessagingService>
