import { createHash, randomBytes, randomInt } from 'node:crypto'
import { generateSecret, generateURI, verify } from 'otplib'
import { ConflictError, ForbiddenError, InvalidInputError, UnauthenticatedError } from '../../errors.js'
import type { Clock } from '../../platform/clock.js'
import type { PasswordHasher } from '../../platform/passwords.js'
import type { AccountsStore, UserRow } from '../accounts/index.js'
import type { Auth, SessionsService, SignInContext, SignedIn } from '../sessions/index.js'
import { openSecret, sealSecret } from './secrets.js'
import type { TwoFactorStore } from './store.js'

/** What the authenticator apps expect (RFC 6238's usual settings): SHA-1, 6 digits, 30 s. */
const PERIOD_SECONDS = 30
/** One step either side of now, for clocks a little off. */
const DRIFT_SECONDS = PERIOD_SECONDS
const RECOVERY_CODES = 10
/** Lowercase letters and digits without the look-alikes (0/o, 1/l/i). */
const RECOVERY_ALPHABET = 'abcdefghjkmnpqrstuvwxyz23456789'
/** A sign-in waiting for its second factor lives this long... */
const CHALLENGE_TTL_SECONDS = 300
/** ...and takes this many tries (a 6-digit code: one chance in 200,000 per token). */
const CHALLENGE_ATTEMPTS = 5
const SWEEP_EVERY_MS = 10 * 60_000

const sha256 = (text: string) => createHash('sha256').update(text).digest('base64url')
/** A recovery code as typed: any case, with or without its dash or spaces. */
const normalizeRecoveryCode = (code: string) => code.toLowerCase().replace(/[\s-]/g, '')

function newRecoveryCode(): string {
  let code = ''
  for (let i = 0; i < 10; i++) code += RECOVERY_ALPHABET[randomInt(RECOVERY_ALPHABET.length)]
  return `${code.slice(0, 5)}-${code.slice(5)}`
}

export function createTwoFactorService(deps: {
  store: TwoFactorStore
  accounts: AccountsStore
  sessions: SessionsService
  hasher: PasswordHasher
  clock: Clock
  /** Seals TOTP secrets at rest; undefined: they are stored as they are. */
  encryptionKey: Buffer | undefined
  /** The name authenticator apps show beside the account. */
  issuer: string
  log: { warn(object: object, message: string): void }
}) {
  const { store, clock } = deps
  let sweepTimer: NodeJS.Timeout | undefined

  /**
   * The time step of a valid code for the secret, or null. A step at or before `afterStep` is
   * refused here already; the store refuses it again atomically.
   */
  const stepOf = async (secret: string, code: string, afterStep: number | null): Promise<number | null> => {
    try {
      const result = await verify({
        secret,
        token: code,
        period: PERIOD_SECONDS,
        epoch: Math.floor(clock.now().getTime() / 1000),
        epochTolerance: DRIFT_SECONDS,
        ...(afterStep !== null ? { afterTimeStep: afterStep } : {}),
      })
      return result.valid && 'timeStep' in result ? result.timeStep : null
    } catch {
      // A malformed code is a wrong code.
      return null
    }
  }

  /** Takes a code of the user's authenticator once: true if it was right and not used before. */
  const takeCode = async (userId: string, code: string, enabled: boolean): Promise<boolean> => {
    const row = await store.totp(userId)
    if (!row || (row.enabled_at !== null) !== enabled) return false
    const step = await stepOf(openSecret(row.secret, deps.encryptionKey), code, row.last_step)
    return step !== null && (await store.takeStep(userId, step, enabled))
  }

  const isOn = async (userId: string) => (await store.totp(userId))?.enabled_at != null

  const service = {
    async start() {
      // Sign-ins that need a second factor ask this feature for a challenge.
      deps.sessions.setSecondFactor(async (user, version, context) => {
        if (!(await isOn(user.id))) return null
        const token = randomBytes(32).toString('base64url')
        await store.addChallenge({
          token_hash: sha256(token),
          user_id: user.id,
          sessions_version: version,
          user_agent: context.userAgent?.slice(0, 300) ?? null,
          expires_at: new Date(clock.now().getTime() + CHALLENGE_TTL_SECONDS * 1000),
        })
        return { token, expiresIn: CHALLENGE_TTL_SECONDS }
      })
      const sweep = () => store.sweep(clock.now()).catch((error: unknown) => deps.log.warn({ err: error }, 'could not delete lapsed two-factor challenges'))
      sweepTimer = setInterval(() => void sweep(), SWEEP_EVERY_MS)
      sweepTimer.unref()
    },

    async close() {
      clearInterval(sweepTimer)
    },

    async status(auth: Auth) {
      const on = await isOn(auth.userId)
      return { enabled: on, recovery_codes_left: on ? await store.recoveryCodesLeft(auth.userId) : 0 }
    },

    /** A new secret for the caller's authenticator app; on only once a code from it is confirmed. */
    async setUp(auth: Auth, user: UserRow) {
      const secret = generateSecret()
      const stored = await store.setPending(auth.userId, sealSecret(secret, deps.encryptionKey), clock.now())
      if (!stored) throw new ConflictError('Two-factor sign-in is on already: turn it off first', 'two_factor_already_on')
      const uri = generateURI({ issuer: deps.issuer, label: user.email ?? user.id, secret, period: PERIOD_SECONDS })
      return { secret, otpauth_uri: uri }
    },

    /** Turns two-factor on with a first code from the app; answers the recovery codes, shown this once. */
    async confirm(auth: Auth, code: string) {
      const row = await store.totp(auth.userId)
      if (!row) throw new ConflictError('Ask POST /user/2fa for a secret first', 'two_factor_not_set_up')
      if (row.enabled_at) throw new ConflictError('Two-factor sign-in is on already', 'two_factor_already_on')
      if (!(await takeCode(auth.userId, code, false))) throw new InvalidInputError('The code is wrong or out of its time window', [{ field: 'body/code', message: 'is not a current code of this secret' }], 'invalid_mfa_code')
      const codes = Array.from({ length: RECOVERY_CODES }, newRecoveryCode)
      await store.enable(auth.userId, codes.map((c) => sha256(normalizeRecoveryCode(c))), clock.now())
      return { recovery_codes: codes }
    },

    /** Turns two-factor off: a current code or the password vouches for the caller. */
    async disable(auth: Auth, proof: { code?: string; password?: string }) {
      if (!(await isOn(auth.userId))) throw new ConflictError('Two-factor sign-in is not on', 'two_factor_off')
      if (proof.code !== undefined) {
        if (!(await takeCode(auth.userId, proof.code, true))) throw new ForbiddenError('The code is wrong, used already, or out of its time window', 'invalid_mfa_code')
      } else if (proof.password !== undefined) {
        if (!(await deps.hasher.verify(proof.password, await deps.accounts.passwordHash(auth.userId)))) throw new ForbiddenError('The password is wrong', 'wrong_password')
      } else {
        throw new InvalidInputError('Send a current code or the password', [{ field: 'body', message: 'must have code or password' }], 'code_or_password_required')
      }
      await store.disable(auth.userId)
    },

    /**
     * The second step of a sign-in: the challenge's token and a code (or a recovery code). Each
     * try counts against the token; right, it ends the challenge and answers a session.
     */
    async signIn(mfaToken: string, proof: { code?: string; recovery_code?: string }, context: SignInContext): Promise<SignedIn> {
      if (proof.code === undefined && proof.recovery_code === undefined) {
        throw new InvalidInputError('Send a code or a recovery code', [{ field: 'body', message: 'must have code or recovery_code' }], 'code_or_password_required')
      }
      const tokenHash = sha256(mfaToken)
      const challenge = await store.attempt(tokenHash, CHALLENGE_ATTEMPTS, clock.now())
      if (!challenge) throw new UnauthenticatedError('The mfa_token is unknown, used, expired or out of attempts: sign in again', 'invalid_mfa_token')
      const right = proof.code !== undefined
        ? await takeCode(challenge.user_id, proof.code, true)
        : await store.useRecoveryCode(challenge.user_id, sha256(normalizeRecoveryCode(proof.recovery_code!)), clock.now())
      if (!right) throw new UnauthenticatedError('The code is wrong, used already, or out of its time window', 'invalid_mfa_code')
      if (!(await store.endChallenge(tokenHash))) throw new UnauthenticatedError('The mfa_token is used already: sign in again', 'invalid_mfa_token')
      const found = await deps.accounts.findForSignIn(challenge.user_id)
      if (!found) throw new UnauthenticatedError('This account is gone', 'invalid_mfa_token')
      const { sessions_version: _version, ...user } = found
      // The session is made as of the version the password was checked at: a change since (a new
      // password, a sign-out everywhere) wins.
      return deps.sessions.open(user, challenge.sessions_version, { userAgent: challenge.user_agent ?? context.userAgent, address: context.address })
    },
  }
  return service
}

export type TwoFactorService = ReturnType<typeof createTwoFactorService>
