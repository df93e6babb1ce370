import { createHash, randomBytes } from 'node:crypto'
import type { Kysely, Transaction } from 'kysely'
import { ConflictError, InvalidInputError } from '../../errors.js'
import type { Clock } from '../../platform/clock.js'
import type { Database } from '../../platform/db/index.js'
import type { PasswordHasher } from '../../platform/passwords.js'
import type { Queue, StopHandling } from '../../platform/queue/index.js'
import { checkNewPassword, createAccountsStore, EmailTakenError, type AccountsService, type UserRow } from '../accounts/index.js'
import { renderMail, type MailParts, type MailService } from '../mail/index.js'
import { createIdentityStore, type TokenPurpose } from './store.js'

// What proves who a user is beyond the password: the links mailed to them. Every token is 256
// random bits, mailed once and stored only as its SHA-256, used once (the use and its effect
// commit together), and lapses: a used, expired or unknown token is 400 `invalid_token` and
// changes nothing.

const HOUR_MS = 3_600_000
export const TOKEN_LIFETIMES_MS: Record<TokenPurpose, number> = {
  confirm_email: 48 * HOUR_MS,
  reset_password: 30 * 60_000,
  undo_email_change: 3 * 24 * HOUR_MS,
}
/** A forgotten password's mail is made by a task, so that the answer is the same, in the same time, whether the account exists or not. */
const FORGOT_TASK = 'identity.password-forgot'
/** Seconds before that task runs (see forgotPassword). */
const FORGOT_DELAY_S = 2

interface ForgotTask {
  email: string
}

export interface SignInContext {
  userAgent?: string
  /** The app's own id for the device (`X-Device-Id`), when it sends one. */
  deviceId?: string
  address: string
}

const hashOf = (token: string) => createHash('sha256').update(token).digest('base64url')
const invalidToken = () => new InvalidInputError('This link or token is unknown, used or expired: ask for a new mail', [{ field: 'body/token', message: 'is unknown, used or expired' }], 'invalid_token')

export function createIdentityService(deps: {
  db: Kysely<Database>
  accounts: AccountsService
  mail: MailService
  hasher: PasswordHasher
  queue: Queue
  clock: Clock
  /** Where the links in mails lead (PUBLIC_URL, or this server). */
  appUrl: string
  productName: string
}) {
  const { clock } = deps
  const store = createIdentityStore(deps.db)
  const handlers: StopHandling[] = []
  let sweepTimer: NodeJS.Timeout | undefined

  const link = (path: string, token: string) => `${deps.appUrl}/${path}?token=${token}`
  const mail = (trx: Transaction<Database>, parts: MailParts, key: string) => deps.mail.enqueue(trx, renderMail(deps.productName, parts), key)

  /** A new token for `purpose`, stored as its hash in the transaction; answers the token (for the mail alone). */
  const issue = async (trx: Transaction<Database>, userId: string, purpose: TokenPurpose, email: string | null) => {
    const token = randomBytes(32).toString('base64url')
    const now = clock.now()
    const tokenHash = hashOf(token)
    await createIdentityStore(trx).addToken({ token_hash: tokenHash, user_id: userId, purpose, email, created_at: now, expires_at: new Date(now.getTime() + TOKEN_LIFETIMES_MS[purpose]) })
    return { token, key: `${purpose}:${tokenHash}` }
  }

  /** Mails a link to confirm `email` as the user's (at sign-up, on a resend, for a new address). */
  const mailConfirmation = async (trx: Transaction<Database>, user: Pick<UserRow, 'id' | 'first_name'>, email: string, change: boolean) => {
    const { token, key } = await issue(trx, user.id, 'confirm_email', email)
    await mail(trx, {
      to: email,
      subject: change ? 'confirm your new email' : 'confirm your email',
      paragraphs: [
        `Hello ${user.first_name},`,
        change
          ? `Please confirm that ${email} is your new email for ${deps.productName}. Until you do, your account keeps the address it had.`
          : `Welcome to ${deps.productName}! Please confirm that ${email} is your email: until you do, you can look around and set up your profile, but not send messages or make, accept or pay for jobs.`,
      ],
      action: { label: 'Confirm your email', url: link('confirm-email', token), token },
      after: [`The link works once, for ${TOKEN_LIFETIMES_MS.confirm_email / HOUR_MS} hours. If you did not ask for this, ignore this mail.`],
    }, key)
  }

  const deviceHash = (userId: string, context: SignInContext) =>
    hashOf(`${userId}\n${context.deviceId ? `id:${context.deviceId}` : `ua:${context.userAgent ?? ''}`}`)

  return {
    async start() {
      handlers.push(
        await deps.queue.handle<ForgotTask>(FORGOT_TASK, async (task) => {
          const found = await createAccountsStore(deps.db).findForLogin(task.data.email)
          if (!found?.email) {
            // No such account: nothing to mail (a mail to a stranger's address would let anyone send them mail).
            await deps.db.transaction().execute((trx) => task.completeIn(trx))
            return
          }
          await deps.db.transaction().execute(async (trx) => {
            // One reset link counts at a time: the newest.
            await createIdentityStore(trx).endTokens(found.id, 'reset_password', clock.now())
            const { token, key } = await issue(trx, found.id, 'reset_password', null)
            await mail(trx, {
              to: found.email!,
              subject: 'reset your password',
              paragraphs: [`Hello ${found.first_name},`, `Someone (we hope you) asked to reset the password of your ${deps.productName} account. Choose a new one with this link; it signs you out everywhere.`],
              action: { label: 'Choose a new password', url: link('reset-password', token), token },
              after: [`The link works once, for ${TOKEN_LIFETIMES_MS.reset_password / 60_000} minutes. If you did not ask for it, ignore this mail: your password stays as it is.`],
            }, key)
            await task.completeIn(trx)
          })
        }, { retryLimit: 5, retryDelaySeconds: 5 }),
      )
      deps.accounts.onSignedUp(async (trx, user) => {
        if (user.email) await mailConfirmation(trx, user, user.email, false)
      })
      deps.accounts.handleEmailChanges(async (trx, user, newEmail) => {
        await mailConfirmation(trx, user, newEmail, true)
        if (!user.email) return
        const { token, key } = await issue(trx, user.id, 'undo_email_change', user.email)
        await mail(trx, {
          to: user.email,
          subject: 'your email is being changed',
          paragraphs: [`Hello ${user.first_name},`, `Someone signed in to your ${deps.productName} account asked to change its email from ${user.email} to ${newEmail}. The change takes effect once the new address confirms it.`],
          action: { label: 'This was not me: undo the change and sign out everywhere', url: link('undo-email-change', token), token },
          after: [`The link works once, for ${TOKEN_LIFETIMES_MS.undo_email_change / (24 * HOUR_MS)} days, even after the change took effect. Then reset your password.`],
        }, key)
      })
      deps.accounts.onDeleted((userId) => store.forgetUser(userId))
      // Lapsed tokens are kept a day (a late click still finds "expired", not "unknown"), then go.
      sweepTimer = setInterval(() => void store.sweep(new Date(clock.now().getTime() - 24 * HOUR_MS)).catch(() => {}), HOUR_MS)
      sweepTimer.unref()
    },

    async close() {
      clearInterval(sweepTimer)
      for (const stop of handlers.splice(0)) await stop()
    },

    /** Confirms an address with the token mailed to it: the user's, or a new one, which becomes the user's. */
    async confirmEmail(token: string): Promise<void> {
      await deps.accounts.changeWith(async (trx) => {
        const now = clock.now()
        const tokens = createIdentityStore(trx)
        const used = await tokens.useToken(hashOf(token), 'confirm_email', now)
        if (!used?.email) throw invalidToken()
        const accounts = createAccountsStore(trx)
        const user = await accounts.findById(used.user_id)
        if (!user) throw invalidToken()
        // Any other confirmation link of the user lapses: the address is settled now.
        await tokens.endTokens(user.id, 'confirm_email', now)
        const sameAddress = used.email.toLowerCase() === user.email?.toLowerCase()
        try {
          return await accounts.update(user.id, { ...(sameAddress ? {} : { email: used.email }), email_confirmed_at: user.email_confirmed_at && sameAddress ? user.email_confirmed_at : now }, now)
        } catch (error) {
          if (error instanceof EmailTakenError) throw new ConflictError('Another account took this email meanwhile', 'email_taken')
          throw error
        }
      })
    },

    /** Mails the caller a new confirmation link, unless the email is confirmed already (answers whether one went). */
    async resendConfirmation(user: UserRow): Promise<boolean> {
      if (user.email_confirmed_at !== null || !user.email) return false
      await deps.db.transaction().execute((trx) => mailConfirmation(trx, user, user.email!, false))
      return true
    },

    /** Undoes an email change with the token mailed to the old address: the old one comes back, every session ends. */
    async undoEmailChange(token: string): Promise<void> {
      await deps.accounts.changeWith(async (trx) => {
        const now = clock.now()
        const tokens = createIdentityStore(trx)
        const used = await tokens.useToken(hashOf(token), 'undo_email_change', now)
        if (!used?.email) throw invalidToken()
        const accounts = createAccountsStore(trx)
        const user = await accounts.findById(used.user_id)
        if (!user) throw invalidToken()
        // The change asked for lapses, confirmed or not.
        await tokens.endTokens(user.id, 'confirm_email', now)
        if (used.email.toLowerCase() === user.email?.toLowerCase()) return user
        try {
          // The old address proved itself again by this link.
          return await accounts.update(user.id, { email: used.email, email_confirmed_at: now }, now)
        } catch (error) {
          if (error instanceof EmailTakenError) throw new ConflictError('Another account took the old email meanwhile', 'email_taken')
          throw error
        }
      }, { endSessions: {} })
    },

    /**
     * Asks for a reset link: the same work (a task added) whether or not the account exists. The
     * task starts a moment later, not at the commit: run at once, its work for a known account
     * (a token, a mail) would share the process with this answer and slow it measurably.
     */
    async forgotPassword(email: string): Promise<void> {
      await deps.queue.add(deps.db, FORGOT_TASK, { email: email.trim() } satisfies ForgotTask, { delaySeconds: FORGOT_DELAY_S })
    },

    /** Sets a new password with a reset token; every session of the user ends. */
    async resetPassword(token: string, password: string): Promise<void> {
      checkNewPassword(password)
      const passwordHash = await deps.hasher.hash(password)
      await deps.accounts.changeWith(async (trx) => {
        const now = clock.now()
        const tokens = createIdentityStore(trx)
        const used = await tokens.useToken(hashOf(token), 'reset_password', now)
        if (!used) throw invalidToken()
        await tokens.endTokens(used.user_id, 'reset_password', now)
        const accounts = createAccountsStore(trx)
        const user = await accounts.findById(used.user_id)
        if (!user) throw invalidToken()
        // The link came to the user's address: that confirms it too.
        return accounts.update(user.id, { password_hash: passwordHash, email_confirmed_at: user.email_confirmed_at ?? now }, now)
      }, { endSessions: {} })
    },

    /**
     * In the sign-in's transaction: records the device, and mails the user when it is one they
     * have not signed in from before (never for the first device of an account).
     */
    async signedIn(trx: Transaction<Database>, user: UserRow, context: SignInContext): Promise<void> {
      const now = clock.now()
      const seen = await createIdentityStore(trx).seeDevice(trx, user.id, deviceHash(user.id, context), now)
      if (!seen.isNew || !seen.knownBefore || !user.email) return
      await mail(trx, {
        to: user.email,
        subject: 'a sign-in from a new device',
        paragraphs: [
          `Hello ${user.first_name},`,
          `Your ${deps.productName} account was signed in to from a device it had not been used on before.`,
          `When: ${now.toISOString().replace('T', ' ').slice(0, 16)} UTC\nDevice: ${(context.userAgent ?? 'unknown').slice(0, 200)}\nAddress: ${context.address}`,
          'If this was you, there is nothing to do. If not, reset your password at once (POST /password/forgot, "Forgot password" in the app): it signs you out everywhere.',
        ],
      }, `new-device:${user.id}:${deviceHash(user.id, context)}:${now.getTime()}`)
    },
  }
}

export type IdentityService = ReturnType<typeof createIdentityService>
