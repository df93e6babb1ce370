import { mkdir, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import nodemailer from 'nodemailer'

// Mail leaves through one of two transports: an SMTP server (SMTP_URL), or, on the embedded
// default, a folder where each mail is written as an .eml file (any mail program opens one), so
// that every flow can be followed on a laptop with nothing installed.

/** A mail as the features write it (the sender and the Message-ID are the mailer's). */
export interface MailMessage {
  to: string
  subject: string
  text: string
  html: string
  headers?: Record<string, string>
}

export interface Mailer {
  /** Where mails go, for the log: "smtp host:port" or the folder. */
  readonly describe: string
  /**
   * Hands one mail over. `messageId` is stable for a mail across retries, so a receiving system
   * (or a reader) can tell a repeat. Answers where it went (the file, for the folder transport).
   */
  send(message: MailMessage, messageId: string): Promise<{ path?: string }>
  close(): void
}

export interface MailerOptions {
  smtpUrl: string | undefined
  mailDir: string
  from: string
}

/** A name safe in a file name, kept readable (the recipient, so a newcomer finds their mail). */
const fileSafe = (text: string) => text.toLowerCase().replace(/[^a-z0-9@._-]+/g, '_').slice(0, 100)

export function createMailer(options: MailerOptions): Mailer {
  if (options.smtpUrl) {
    const url = new URL(options.smtpUrl)
    const transport = nodemailer.createTransport({
      url: options.smtpUrl,
      // A server that does not answer fails the try quickly; the queue tries again later.
      connectionTimeout: 10_000,
      greetingTimeout: 10_000,
      socketTimeout: 30_000,
    } as Parameters<typeof nodemailer.createTransport>[0])
    return {
      describe: `smtp ${url.hostname}:${url.port || (url.protocol === 'smtps:' ? 465 : 587)}`,
      async send(message, messageId) {
        await transport.sendMail({ ...message, from: options.from, messageId })
        return {}
      },
      close: () => transport.close(),
    }
  }
  const stream = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'unix' })
  let made: Promise<unknown> | undefined
  return {
    describe: options.mailDir,
    async send(message, messageId) {
      made ??= mkdir(options.mailDir, { recursive: true })
      await made
      const info = (await stream.sendMail({ ...message, from: options.from, messageId })) as unknown as { message: Buffer }
      // The Message-ID names the file: a mail written again (a retry after a crash) replaces itself.
      const id = messageId.replace(/^<|@.*$/g, '')
      const path = join(options.mailDir, `${fileSafe(message.to)}-${fileSafe(id).slice(0, 24)}.eml`)
      // Written whole, then renamed: a reader never sees half a mail.
      const partial = `${path}.partial`
      await writeFile(partial, info.message)
      await rename(partial, path)
      return { path }
    },
    close: () => stream.close(),
  }
}
