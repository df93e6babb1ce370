import { sql, type Kysely, type RawBuilder, type Selectable, type SelectQueryBuilder, type Transaction } from 'kysely'
import { v7 as uuidv7 } from 'uuid'
import type { DB, Database } from '../../platform/db/index.js'
import { blockerBetween, holdPair } from '../blocks/index.js'
import { createSendBatcher } from './send-batch.js'

declare module '../../platform/db/types.js' {
  interface Database {
    messages: MessagesTable
    conversations: { user_id: string; peer_id: string; last_message_id: string }
    /** Kept by triggers on messages (migration 0006); system messages count under the nil id. */
    unread_counts: { user_id: string; peer_id: string; count: number }
    send_idempotency: { user_id: string; key: string; request_hash: string; message_id: string; created_at: Date }
  }
}

interface MessagesTable {
  id: string
  sender_id: string | null
  recipient_id: string
  text: string
  kind: 'user' | 'system'
  job_id: string | null
  created_at: Date
  read_at: Date | null
}

/** A message as stored. `sender_id` is null for system messages. */
export type MessageRow = Selectable<MessagesTable>

export interface NewMessage {
  from: string | null
  to: string
  text: string
  kind: 'user' | 'system'
  jobId?: string | null
  /** A UUIDv7 chosen beforehand; made here when absent. */
  id?: string
  /** When it was sent, from the app's clock. */
  at: Date
}

/** The row a new message is stored as: its id (UUIDv7) is made here unless chosen beforehand. */
export function newMessageRow(message: NewMessage): MessageRow {
  return {
    id: message.id ?? uuidv7(),
    sender_id: message.from,
    recipient_id: message.to,
    text: message.text,
    kind: message.kind,
    job_id: message.jobId ?? null,
    created_at: message.at,
    read_at: null,
  }
}

/**
 * The common table expressions that store messages and move both users' thread of each user's
 * message to it: `said` and `threads`, for a statement of any feature, so that the messages commit
 * with its change in ONE statement (atomic without a transaction, one round trip). With `onlyIf`
 * (the name of an earlier CTE), nothing is stored unless that CTE has a row: a job change that lost
 * a race stores no message. Push with `messaging.publishCreated` after it commits.
 */
export function messagesWrite(rows: MessageRow[], onlyIf?: string): RawBuilder<unknown> {
  // A thread row per user and peer, at its newest message; in one fixed order, so that two users
  // writing to each other never deadlock.
  const threads = new Map<string, { user_id: string; peer_id: string; last_message_id: string }>()
  for (const m of rows) {
    if (m.sender_id === null || m.sender_id === m.recipient_id) continue
    for (const [user, peer] of [[m.sender_id, m.recipient_id], [m.recipient_id, m.sender_id]] as const) {
      const seen = threads.get(`${user} ${peer}`)
      if (!seen || seen.last_message_id < m.id) threads.set(`${user} ${peer}`, { user_id: user, peer_id: peer, last_message_id: m.id })
    }
  }
  const ordered = [...threads.values()].sort((a, b) => (a.user_id < b.user_id ? -1 : a.user_id > b.user_id ? 1 : a.peer_id < b.peer_id ? -1 : 1))
  const guard = onlyIf ? sql`WHERE EXISTS (SELECT 1 FROM ${sql.table(onlyIf)})` : sql``
  return sql`said AS (
      INSERT INTO messages SELECT r.* FROM json_populate_recordset(NULL::messages, ${JSON.stringify(rows)}::json) r ${guard}
    ),
    threads AS (
      INSERT INTO conversations (user_id, peer_id, last_message_id)
      SELECT t.user_id, t.peer_id, t.last_message_id FROM json_populate_recordset(NULL::conversations, ${JSON.stringify(ordered)}::json) t ${guard}
      ON CONFLICT (user_id, peer_id) DO UPDATE SET last_message_id = greatest(conversations.last_message_id, excluded.last_message_id)
    )`
}

/** Stores messages (and their threads) in one statement; takes the database or a transaction. */
export async function insertMessages(db: Kysely<Database> | Transaction<Database>, messages: NewMessage[]): Promise<MessageRow[]> {
  const rows = messages.map(newMessageRow)
  if (rows.length > 0) await sql`WITH ${messagesWrite(rows)} SELECT 1`.execute(db)
  return rows
}

/** A user row as messages show it: deleted accounts are tombstones, kept with `deleted_at` set. */
export interface ParticipantRow {
  id: string
  email: string | null
  first_name: string
  last_name: string
  roles: ('CLIENT' | 'WORKER' | 'ADMIN')[]
  picture_etag: string | null
  created_at: Date
  updated_at: Date
  deleted_at: Date | null
}

/** What a message between two users depends on: both users (deleted ones as tombstones) and which of them blocked the other, if either did. */
export interface SendContext {
  users: ParticipantRow[]
  blockerId: string | null
}

/** What a message between two users depends on, with what a message shows of each user. */
export interface SenderContext {
  users: SenderRow[]
  blockerId: string | null
}

/** A send that was allowed: the message stored, or under an idempotency key used before, the first one (if it is still there) with the hash of its request. */
export type Stored = { created: true; message: MessageRow } | { created: false; requestHash: string; message: MessageRow | undefined }

/** What a message shows of its sender (and a thread or a block of the other user). */
export type SenderRow = Pick<ParticipantRow, 'id' | 'first_name' | 'last_name' | 'picture_etag' | 'deleted_at'>

/** A message with its sender's row (null for system messages). */
export type MessageWithSender = MessageRow & { sender: SenderRow | null }

export interface ConversationRow {
  peer_id: string
  last_message_id: string
  unread: number
}

export function createMessagingStore(db: DB) {
  const sends = createSendBatcher(db)
  const messageColumns = ['id', 'sender_id', 'recipient_id', 'text', 'kind', 'job_id', 'created_at', 'read_at'] as const

  /** A page of messages with their senders joined in: one round trip for the whole answer. */
  const withSenders = async (page: SelectQueryBuilder<Database, never, MessageRow>): Promise<MessageWithSender[]> => {
    const rows = await db
      .selectFrom(page.as('m'))
      .leftJoin('users as u', 'u.id', 'm.sender_id')
      .selectAll('m')
      .select(['u.first_name as s_first_name', 'u.last_name as s_last_name', 'u.picture_etag as s_picture_etag', 'u.deleted_at as s_deleted_at'])
      .orderBy('m.id', 'desc')
      .execute()
    return rows.map((r) => ({
      id: r.id,
      sender_id: r.sender_id,
      recipient_id: r.recipient_id,
      text: r.text,
      kind: r.kind,
      job_id: r.job_id,
      created_at: r.created_at,
      read_at: r.read_at,
      sender:
        r.sender_id && r.s_first_name !== null
          ? { id: r.sender_id, first_name: r.s_first_name, last_name: r.s_last_name!, picture_etag: r.s_picture_etag, deleted_at: r.s_deleted_at }
          : null,
    }))
  }

  /** Both users of a message (deleted ones as tombstones), each row with who blocked whom, if anyone did. */
  const contextQuery = (on: DB, senderId: string, recipientId: string) =>
    on
      .selectFrom('users')
      .select(['id', 'email', 'first_name', 'last_name', 'roles', 'picture_etag', 'created_at', 'updated_at', 'deleted_at'])
      .select(() => blockerBetween(on, senderId, recipientId).as('blocker_id'))
      .where('id', 'in', [senderId, recipientId])
  type ContextRow = Awaited<ReturnType<ReturnType<typeof contextQuery>['execute']>>[number]
  const contextOf = (rows: ContextRow[]): SendContext => ({
    users: rows.map(({ blocker_id: _b, ...user }) => user as ParticipantRow),
    blockerId: rows[0]?.blocker_id ?? null,
  })
  /** Whether a user's message may go: its recipient is a live user and neither blocked the other. */
  const allowed = (context: SenderContext, recipientId: string) =>
    context.blockerId === null && context.users.some((u) => u.id === recipientId && u.deleted_at === null)

  /**
   * Holds the pair of users in the caller's transaction (see blocks' holdPair), then reads what a
   * message between them depends on: a block committed before is seen, and one made meanwhile
   * waits until the transaction ends.
   */
  const heldContext = async (trx: Transaction<Database>, senderId: string, recipientId: string): Promise<SendContext> => {
    await holdPair(trx, senderId, recipientId)
    return contextOf(await contextQuery(trx, senderId, recipientId).execute())
  }

  return {
    /** Users by id, deleted ones included (as tombstones). */
    async participants(ids: string[]): Promise<ParticipantRow[]> {
      if (ids.length === 0) return []
      return db
        .selectFrom('users')
        .select(['id', 'email', 'first_name', 'last_name', 'roles', 'picture_etag', 'created_at', 'updated_at', 'deleted_at'])
        .where('id', 'in', [...new Set(ids)])
        .execute() as Promise<ParticipantRow[]>
    },

    /** What a message between two users depends on (as heldContext), read on its own: a check that a held read confirms later. */
    async sendContext(senderId: string, recipientId: string): Promise<SendContext> {
      return contextOf(await contextQuery(db, senderId, recipientId).execute())
    },

    heldContext,

    /**
     * Stores a user's message if its recipient is a live user and neither blocked the other: with
     * the other sends of the moment, in one call of send_messages (migration 0052), which holds
     * each pair (as holdPair), then reads and stores. Answers what heldContext answers, and what
     * was `stored` when it may go.
     */
    async insertIfAllowed(message: NewMessage & { from: string }): Promise<SenderContext & { stored?: Stored }> {
      const row = newMessageRow(message)
      const rows = await sends.send(row)
      const context = { users: rows.map(({ blocker_id: _b, ...user }) => user), blockerId: rows[0]?.blocker_id ?? null }
      return { ...context, ...(allowed(context, row.recipient_id) ? { stored: { created: true as const, message: row } } : {}) }
    },

    /**
     * Stores a user's message under an idempotency key, in one transaction that holds the pair
     * and reads what the message depends on first (as heldContext); nothing is stored, and no
     * key taken, unless it may go. When the key was used already (a retry, or the same request
     * racing itself) nothing is stored and the first message comes back (in `stored`) with the
     * hash of the request that made it.
     */
    async insertIdempotent(userId: string, key: string, requestHash: string, message: NewMessage & { id: string; to: string }): Promise<SendContext & { stored?: Stored }> {
      return db.transaction().execute(async (trx) => {
        const context = await heldContext(trx, userId, message.to)
        if (!allowed(context, message.to)) return context
        // A racing twin waits here on the key's row until the first commits, then finds it.
        const claimed = await trx
          .insertInto('send_idempotency')
          .values({ user_id: userId, key, request_hash: requestHash, message_id: message.id, created_at: message.at })
          .onConflict((oc) => oc.columns(['user_id', 'key']).doNothing())
          .returning('message_id')
          .executeTakeFirst()
        if (claimed) return { ...context, stored: { created: true as const, message: (await insertMessages(trx, [message]))[0]! } }
        const first = await trx
          .selectFrom('send_idempotency')
          .select(['request_hash', 'message_id'])
          .where('user_id', '=', userId)
          .where('key', '=', key)
          .executeTakeFirstOrThrow()
        const row = await trx.selectFrom('messages').select(messageColumns).where('id', '=', first.message_id).executeTakeFirst()
        return { ...context, stored: { created: false as const, requestHash: first.request_hash, message: row } }
      })
    },

    /** Forgets the idempotency keys made before a time. */
    async sweepIdempotency(before: Date): Promise<void> {
      await db.deleteFrom('send_idempotency').where('created_at', '<', before).execute()
    },

    /** The user's received messages, newest first, before a message id. */
    async inbox(userId: string, options: { beforeId?: string; limit: number }): Promise<MessageWithSender[]> {
      // Joined laterally from the user's row, so the recipient is a parameter of the join rather
      // than a constant: the planner then reads the inbox index whatever this user's share of all
      // messages. With the constant, a user holding most rows had it walk the whole table's newest
      // messages, everyone's, backwards.
      const page = db
        .selectFrom('users as owner')
        .innerJoinLateral(
          (eb) => {
            let query = eb.selectFrom('messages').select(messageColumns).whereRef('messages.recipient_id', '=', 'owner.id')
            if (options.beforeId) query = query.where('messages.id', '<', options.beforeId)
            return query.orderBy('messages.id', 'desc').limit(options.limit).as('p')
          },
          (join) => join.onTrue(),
        )
        .selectAll('p')
        .where('owner.id', '=', userId)
      return withSenders(page as unknown as SelectQueryBuilder<Database, never, MessageRow>)
    },

    /** One conversation, both directions, newest first: two index range scans merged. */
    async conversation(userId: string, peerId: string, options: { beforeId?: string; limit: number }): Promise<MessageWithSender[]> {
      const side = (from: string, to: string) => {
        let query = db.selectFrom('messages').select(messageColumns).where('sender_id', '=', from).where('recipient_id', '=', to)
        if (options.beforeId) query = query.where('id', '<', options.beforeId)
        return query.orderBy('id', 'desc').limit(options.limit)
      }
      // Each side in a subquery of its own: ORDER BY and LIMIT inside a UNION need the parentheses.
      const both = db.selectFrom(side(userId, peerId).as('s')).selectAll().unionAll(db.selectFrom(side(peerId, userId).as('r')).selectAll())
      return withSenders(db.selectFrom(both.as('b')).selectAll().orderBy('id', 'desc').limit(options.limit))
    },

    /** The user's unread received messages (from one sender, with `fromId`), from the counts the triggers keep. */
    async unreadCount(userId: string, fromId?: string): Promise<number> {
      let query = db.selectFrom('unread_counts').select((eb) => eb.fn.coalesce(eb.fn.sum<number>('count'), eb.lit(0)).as('n')).where('user_id', '=', userId)
      if (fromId) query = query.where('peer_id', '=', fromId)
      const row = await query.executeTakeFirstOrThrow()
      return Number(row.n)
    },

    /** The user's threads, most recent first, with each one's unread count. */
    async conversations(userId: string, options: { before?: { last: string; peer: string }; limit: number }): Promise<ConversationRow[]> {
      let query = db
        .selectFrom('conversations as c')
        .leftJoin('unread_counts as u', (join) => join.onRef('u.user_id', '=', 'c.user_id').onRef('u.peer_id', '=', 'c.peer_id'))
        .select(['c.peer_id', 'c.last_message_id', 'u.count as unread'])
        .where('c.user_id', '=', userId)
      if (options.before) {
        const { last, peer } = options.before
        query = query.where((eb) => eb.or([eb('c.last_message_id', '<', last), eb.and([eb('c.last_message_id', '=', last), eb('c.peer_id', '>', peer)])]))
      }
      const rows = await query.orderBy('c.last_message_id', 'desc').orderBy('c.peer_id').limit(options.limit).execute()
      return rows.map((r) => ({ peer_id: r.peer_id, last_message_id: r.last_message_id, unread: r.unread ?? 0 }))
    },

    async messagesById(ids: string[]): Promise<MessageRow[]> {
      if (ids.length === 0) return []
      return db.selectFrom('messages').select(messageColumns).where('id', 'in', ids).execute()
    },

    /** A message the user sent or received; undefined for anyone else's. */
    async messageOf(userId: string, id: string): Promise<MessageRow | undefined> {
      return db
        .selectFrom('messages')
        .select(messageColumns)
        .where('id', '=', id)
        .where((eb) => eb.or([eb('recipient_id', '=', userId), eb('sender_id', '=', userId)]))
        .executeTakeFirst()
    },

    /**
     * Marks the user's received messages up to a message id read at a time. Answers, per sender,
     * the newest message that became read, and the time stamped on them.
     */
    async markRead(userId: string, upToId: string, readAt: Date, fromId?: string): Promise<{ readAt: Date; bySender: { sender_id: string | null; up_to: string }[] }> {
      let query = db
        .updateTable('messages')
        .set({ read_at: readAt })
        .where('recipient_id', '=', userId)
        .where('read_at', 'is', null)
        .where('id', '<=', upToId)
      if (fromId) query = query.where('sender_id', '=', fromId)
      const rows = await query.returning(['id', 'sender_id']).execute()
      const newest = new Map<string | null, string>()
      for (const row of rows) {
        const seen = newest.get(row.sender_id)
        if (seen === undefined || row.id > seen) newest.set(row.sender_id, row.id)
      }
      return { readAt, bySender: [...newest].map(([sender_id, up_to]) => ({ sender_id, up_to })) }
    },

    /** What the user sent or received after a message id, oldest first (catching up a socket). */
    async since(userId: string, afterId: string, limit: number): Promise<MessageRow[]> {
      const received = db.selectFrom('messages').select(messageColumns).where('recipient_id', '=', userId).where('id', '>', afterId).orderBy('id').limit(limit)
      const sent = db.selectFrom('messages').select(messageColumns).where('sender_id', '=', userId).where('id', '>', afterId).orderBy('id').limit(limit)
      const both = db.selectFrom(received.as('r')).selectAll().unionAll(db.selectFrom(sent.as('s')).selectAll())
      return db.selectFrom(both.as('m')).selectAll().orderBy('id').limit(limit).execute()
    },

    /**
     * Reads the user missed since a time: of messages it sent (by their recipient) and of
     * messages it received (by itself, on another device), the newest read message of each other
     * user and when it was read.
     */
    async readsSince(userId: string, after: Date): Promise<{ by: string; other: string; up_to: string; read_at: Date }[]> {
      const bySender = db
        .selectFrom('messages')
        // PostgreSQL has no max(uuid); a UUIDv7's text sorts as its time does.
        .select(['recipient_id as by', 'recipient_id as other', sql<string>`max(id::text)`.as('up_to'), (eb) => eb.fn.max('read_at').as('read_at')])
        .where('sender_id', '=', userId)
        .where('read_at', '>', after)
        .groupBy('recipient_id')
      const byMe = db
        .selectFrom('messages')
        .select([sql<string>`${userId}::uuid`.as('by'), 'sender_id as other', sql<string>`max(id::text)`.as('up_to'), (eb) => eb.fn.max('read_at').as('read_at')])
        .where('recipient_id', '=', userId)
        .where('sender_id', 'is not', null)
        .where('read_at', '>', after)
        .groupBy('sender_id')
      const rows = await bySender.unionAll(byMe as unknown as typeof bySender).execute()
      return rows.map((r) => ({ by: String(r.by), other: String(r.other), up_to: String(r.up_to), read_at: new Date(r.read_at as Date | string) }))
    },

    /** Forgets a deleted user's idempotency keys (its messages stay for the other party). */
    async forgetUser(userId: string): Promise<void> {
      await db.deleteFrom('send_idempotency').where('user_id', '=', userId).execute()
    },

  }
}

export type MessagingStore = ReturnType<typeof createMessagingStore>
