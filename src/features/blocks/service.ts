import type { Transaction } from 'kysely'
import { Type } from 'typebox'
import { v7 as uuidv7 } from 'uuid'
import { InvalidInputError, NotFoundError } from '../../errors.js'
import { cursorTime, decodeCursor, pageOf } from '../../http/cursor.js'
import type { Clock } from '../../platform/clock.js'
import type { DB, Database } from '../../platform/db/index.js'
import type { Queue, StopHandling } from '../../platform/queue/index.js'
import type { EventBus } from '../../platform/live/index.js'
import { createSharedCache } from '../../platform/live/shared-cache.js'
import type { AccountsService } from '../accounts/index.js'
import { createBlocksStore, type BlocksStore } from './store.js'

export interface BlocksDeps {
  db: DB
  store: BlocksStore
  /** Background tasks: every process's cache drop after a block or unblock commits. */
  queue: Queue
  /** Where a change to someone's blocks is told to every process, so that their caches drop it. */
  events: EventBus
  /** A user as any user may see it (the accounts feature's). */
  summary: AccountsService['summary']
  /** A message the user received, if there is one of that id (the messaging feature's). */
  receivedMessage: (userId: string, messageId: string) => Promise<{ sender_id: string | null } | undefined>
  /** A published, visible review of that id, if there is one (the reviews feature's; set once it is built). */
  visibleReview?: (reviewId: string) => Promise<{ author_id: string } | undefined>
  clock: Clock
}

const BlockCursor = Type.Object({ at: Type.String({ format: 'date-time' }), id: Type.String({ format: 'uuid' }) })

/** Viewers whose blocks (either way) each process keeps for search; most have none. */
const CACHED_BLOCK_SETS = 100_000
const CACHED_BLOCKS_TTL_MS = 60_000
/** What follows a block or an unblock: every process drops the two users' cached blocks. */
const CHANGED_TASK = 'blocks.changed'

export function createBlocksService(deps: BlocksDeps) {
  const { store } = deps

  // Who is hidden from whom, for search: read through a cache of each process, dropped
  // everywhere when either user blocks or unblocks the other.
  const hidden = createSharedCache<ReadonlySet<string>>({ events: deps.events, name: 'blocks', max: CACHED_BLOCK_SETS, ttlMs: CACHED_BLOCKS_TTL_MS })

  let stopHandling: StopHandling | undefined
  const summaries = async (ids: string[]) => new Map((await store.users(ids)).map((u) => [u.id, u]))

  /**
   * Writes a block or an unblock with the task of the cache drop that follows it, in one
   * transaction, then drops at once; should that fail, a worker drops again later. No task when
   * nothing changed (`write` answers false).
   */
  const change = <T>(userIds: string[], write: (store: BlocksStore, trx: Transaction<Database>) => Promise<T>, changedSomething: (result: T) => boolean): Promise<T> =>
    deps.queue.writeThenRun(
      (work) => deps.db.transaction().execute(work),
      CHANGED_TASK,
      (trx) => write(createBlocksStore(trx), trx),
      (result) => (changedSomething(result) ? { user_ids: userIds } : null),
      (data) => hidden.changed(data.user_ids),
    )

  return {
    async block(userId: string, blockedId: string) {
      if (blockedId === userId) throw new InvalidInputError('You cannot block yourself', [{ field: 'body/user_id', message: 'must be another user' }], 'block_self')
      if (!(await store.isLiveUser(blockedId))) throw new NotFoundError('No such user', 'user_not_found')
      const result = await change([userId, blockedId], (store, trx) => store.block(trx, userId, blockedId, deps.clock.now()), (r) => r.created)
      const users = await summaries([blockedId])
      return { created: result.created, block: { user: deps.summary(users.get(blockedId), blockedId), created_at: result.created_at.toISOString() } }
    },

    async unblock(userId: string, blockedId: string): Promise<void> {
      const removed = await change([userId, blockedId], (store) => store.unblock(userId, blockedId), (removed) => removed)
      if (!removed) throw new NotFoundError('You have not blocked this user', 'block_not_found')
    },

    async list(userId: string, query: { limit?: number; cursor?: string }) {
      const limit = query.limit ?? 20
      const after = decodeCursor(query.cursor, BlockCursor)
      if (after) cursorTime(after.at)
      const rows = await store.list(userId, { after, limit: limit + 1 })
      const page = pageOf(rows, limit, (last) => ({ at: last.created_at.toISOString(), id: last.blocked_id }))
      const users = await summaries(page.items.map((r) => r.blocked_id))
      return {
        items: page.items.map((r) => ({ user: deps.summary(users.get(r.blocked_id), r.blocked_id), created_at: r.created_at.toISOString() })),
        next_cursor: page.next_cursor,
      }
    },

    /**
     * The users to leave out of what the viewer finds: those the viewer blocked and those who
     * blocked the viewer. From this process's cache; a block made anywhere shows once its event
     * arrives. Sending checks blocks in the database, never here.
     */
    hiddenFrom: async (viewerId: string): Promise<ReadonlySet<string>> => (await hidden.get(viewerId, (id) => store.blockedEitherWay(id)))!,

    async report(reporterId: string, input: { message_id?: string; user_id?: string; review_id?: string; reason: string }) {
      if ([input.message_id, input.user_id, input.review_id].filter((id) => id !== undefined).length !== 1) {
        throw new InvalidInputError('Report one of a message_id, a user_id or a review_id', [{ field: 'body', message: 'must have exactly one of message_id, user_id and review_id' }], 'report_target')
      }
      let userId: string
      if (input.review_id) {
        // A published review anyone can read; its author is the user reported.
        const review = await deps.visibleReview?.(input.review_id)
        if (!review) throw new NotFoundError('No such published review', 'review_not_found')
        if (review.author_id === reporterId) throw new InvalidInputError('You cannot report your own review', [{ field: 'body/review_id', message: 'is your own' }], 'report_self')
        userId = review.author_id
      } else if (input.message_id) {
        const message = await deps.receivedMessage(reporterId, input.message_id)
        if (!message) throw new NotFoundError('You received no such message', 'message_not_found')
        if (!message.sender_id) throw new InvalidInputError('System messages cannot be reported', [{ field: 'body/message_id', message: 'is a system message' }], 'report_system_message')
        userId = message.sender_id
      } else {
        userId = input.user_id!
        if (userId === reporterId) throw new InvalidInputError('You cannot report yourself', [{ field: 'body/user_id', message: 'must be another user' }], 'report_self')
        if ((await store.users([userId])).length === 0) throw new NotFoundError('No such user', 'user_not_found')
      }
      const row = await store.insertReport({ id: uuidv7(), reporter_id: reporterId, user_id: userId, message_id: input.message_id ?? null, review_id: input.review_id ?? null, reason: input.reason.trim() }, deps.clock.now())
      return { id: row.id, user_id: row.user_id, message_id: row.message_id, review_id: row.review_id, reason: row.reason, created_at: row.created_at.toISOString() }
    },

    /** An account went: the blocks it made go with it (those others made of it stay theirs). */
    async forgetUser(userId: string): Promise<void> {
      await store.forgetUser(userId)
      await hidden.changed([userId])
    },

    async start() {
      await hidden.start()
      stopHandling = await deps.queue.handle<{ user_ids: string[] }>(CHANGED_TASK, (task) => hidden.changed(task.data.user_ids))
    },
    async close() {
      await stopHandling?.()
      await hidden.close()
    },
  }
}

export type BlocksService = ReturnType<typeof createBlocksService>
