import { createHash } from 'node:crypto'
import type { Transaction } from 'kysely'
import { v5 as uuidv5 } from 'uuid'
import type { Database } from '../../platform/db/index.js'
import type { Mailer, MailMessage } from '../../platform/mail/index.js'
import type { Queue, StopHandling } from '../../platform/queue/index.js'

// Every mail goes through the outbox: `enqueue` adds a task in the caller's transaction, so the
// mail exists exactly when the change that asks for it commits, and a worker hands it to the
// mailer after the commit, retrying with backoff while the SMTP server is down. A mail is never
// lost, and never sent twice: its idempotency key makes both the task's id (a second enqueue of
// the same key adds nothing) and its Message-ID (the same on every try, so that a try that reached
// the server before a crash and a retry after it are one mail to the receiving side).

const SEND_TASK = 'mail.send'
/** The namespace of the mails' task ids (UUIDv5 from the idempotency key). */
const MAIL_IDS = '5f0d8f0e-2c1b-4f5e-9a43-8f1d2f6b7c10'
/** About 20 tries over days at the default delay (10 s, doubling): a long outage still delivers. */
const RETRIES = 20

interface SendTask {
  message: MailMessage
  message_id: string
}

export function createMailService(deps: {
  queue: Queue
  mailer: Mailer
  /** Seconds before the first retry of a mail that could not be sent. */
  retryDelaySeconds: number
  log: { info(object: object, message: string): void; warn(object: object, message: string): void }
}) {
  const handlers: StopHandling[] = []
  /** Mail host of the Message-IDs: the sender's domain, else a name of ours. */
  let idDomain = 'freelancer.invalid'

  const messageIdOf = (key: string) => `<${createHash('sha256').update(key).digest('base64url').slice(0, 32)}@${idDomain}>`

  return {
    /**
     * Queues one mail in the caller's transaction. `idempotencyKey` names the mail (a purpose and
     * what it is about: "confirm-email:<token id>"); the same key twice is one mail. Answers
     * whether it was added (false: a mail of that key exists).
     */
    async enqueue(trx: Transaction<Database>, message: MailMessage, idempotencyKey: string): Promise<boolean> {
      const data: SendTask = { message, message_id: messageIdOf(idempotencyKey) }
      const id = await deps.queue.add(trx, SEND_TASK, data, { id: uuidv5(`${SEND_TASK}:${idempotencyKey}`, MAIL_IDS) })
      return id !== null
    },

    /** A task's data as admins see it in the failed tasks: of a mail, never its body (it holds tokens). */
    shownData(name: string, data: unknown): unknown {
      if (name !== SEND_TASK) return data
      const mail = data as Partial<SendTask>
      return { to: mail.message?.to, subject: mail.message?.subject, message_id: mail.message_id }
    },

    async start(options: { from: string }) {
      const domain = /@([A-Za-z0-9.-]+)>?\s*$/.exec(options.from)?.[1]
      if (domain) idDomain = domain
      handlers.push(
        await deps.queue.handle<SendTask>(
          SEND_TASK,
          async (task) => {
            try {
              const sent = await deps.mailer.send(task.data.message, task.data.message_id)
              // The recipient and the subject only: a mail's body holds links with tokens.
              deps.log.info({ mail: { to: task.data.message.to, subject: task.data.message.subject, message_id: task.data.message_id, ...(sent.path ? { path: sent.path } : {}) } }, sent.path ? `mail written to ${sent.path}` : 'mail sent')
            } catch (error) {
              deps.log.warn({ mail: { to: task.data.message.to, message_id: task.data.message_id, try: task.retry + 1 }, err: { message: (error as Error).message } }, `could not send a mail through ${deps.mailer.describe}; it is tried again later`)
              throw error
            }
          },
          { retryLimit: RETRIES, retryDelaySeconds: deps.retryDelaySeconds, expireInSeconds: 120, batchSize: 5 },
        ),
      )
    },

    async close() {
      for (const stop of handlers.splice(0)) await stop()
      deps.mailer.close()
    },
  }
}

export type MailService = ReturnType<typeof createMailService>
