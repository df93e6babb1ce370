import { createHash, randomBytes } from 'node:crypto'
import * as oauth from 'openid-client'
import { v7 as uuidv7 } from 'uuid'
import { Type } from 'typebox'
import { ConflictError, InvalidInputError, NotFoundError, UnavailableError, type ProblemCode } from '../../errors.js'
import { decodeCursor, pageOf } from '../../http/cursor.js'
import type { Clock } from '../../platform/clock.js'
import { ProviderAnswerError, ProviderUnreachableError, type OidcClients, type ProviderIdentity } from '../../platform/oidc.js'
import type { Role } from '../accounts/index.js'
import type { SessionsService, SignInContext, SignedIn } from '../sessions/index.js'
import { capped, postedName, type PostedName } from './posted-name.js'
import { EmailTakenError, IdentityTakenError, type Flow, type OidcStore } from './store.js'

/** A sign-in under way at the provider (its state, nonce and PKCE verifier) lives this long. */
const FLOW_TTL_MS = 10 * 60_000
/** The code an app exchanges for its tokens lives a minute. */
const EXCHANGE_CODE_TTL_MS = 60_000
const SWEEP_EVERY_MS = 5 * 60_000
const CursorPosition = Type.Object({ id: Type.String({ format: 'uuid' }) })

const sha256 = (text: string) => createHash('sha256').update(text).digest('base64url')

/** A sign-in with a provider that failed, with the problem code the app is told. */
export class ProviderSignInError extends Error {
  /** Where the app waits for the outcome, when the flow named one. */
  appRedirect: string | null = null
  constructor(readonly code: ProblemCode, detail: string, readonly status: 400 | 409 | 503) {
    super(detail)
  }
}

/** What the callback leads to. */
export type CallbackOutcome =
  /** Signed in (or an account made): an app address to send the code to, or none (answer the tokens). */
  | { kind: 'signed_in'; appRedirect: string | null; userId: string }
  /** An identity linked to the signed-in account that asked. */
  | { kind: 'linked'; appRedirect: string | null; identity: IdentityView }

export interface IdentityView {
  id: string
  provider: string
  issuer: string
  email: string | null
  created_at: string
  last_used_at: string
}

export function createOidcService(deps: {
  store: OidcStore
  clients: OidcClients
  sessions: SessionsService
  appRedirects: readonly string[]
  clock: Clock
  log: { warn(object: object, message: string): void; info(object: object, message: string): void }
}) {
  const { store, clients, clock } = deps
  let sweepTimer: NodeJS.Timeout | undefined

  const mustKnow = (provider: string) => {
    if (!clients.has(provider)) throw new NotFoundError(`No provider named "${provider}" is configured`, 'provider_not_found')
  }
  const checkRedirect = (redirect: string | undefined) => {
    // Exact match only: no prefixes, no wildcards, no normalizing (an open redirect would hand the code to anyone).
    if (redirect !== undefined && !deps.appRedirects.includes(redirect)) {
      throw new InvalidInputError('redirect_uri is not one of this service\'s app addresses', [{ field: 'querystring/redirect_uri', message: 'must be one of OIDC_APP_REDIRECTS, exactly' }], 'redirect_not_allowed')
    }
  }

  const view = (identity: { id: string; provider: string; issuer: string; email: string | null; created_at: Date; last_used_at: Date }): IdentityView => ({
    id: identity.id,
    provider: identity.provider,
    issuer: identity.issuer,
    email: identity.email,
    created_at: identity.created_at.toISOString(),
    last_used_at: identity.last_used_at.toISOString(),
  })

  /**
   * Who signs in with this identity: its account, an account it links to, or a new one. `posted`:
   * the name the provider's form said beside its answer (Apple's `user`), unsigned, so it only
   * fills what the ID token leaves out of a new account's name.
   */
  const accountFor = async (provider: string, who: ProviderIdentity, flow: Flow, posted: PostedName | undefined): Promise<string> => {
    const now = clock.now()
    const known = await store.findIdentity(who.issuer, who.subject)
    if (known) {
      await store.touchIdentity(known.id, who.email, now)
      return known.user_id
    }
    const identity = { id: uuidv7(), user_id: '', provider, issuer: who.issuer, subject: who.subject, email: who.email, created_at: now, last_used_at: now }
    if (who.email) {
      const existing = await store.accountByEmail(who.email)
      if (existing) {
        // Taken over only when both sides vouch for the address: the provider says it verified it,
        // and the account's owner confirmed it. Else whoever holds the provider account could take
        // an account that is not theirs (or one made with someone else's address).
        if (!who.emailVerified || existing.email_confirmed_at === null) {
          throw new ProviderSignInError('link_from_account', 'An account with this email exists: sign in to it and link this provider from the account', 409)
        }
        await addIdentity({ ...identity, user_id: existing.id })
        return existing.id
      }
    }
    const userId = uuidv7()
    try {
      await store.createAccount(
        {
          id: userId,
          email: who.email,
          first_name: capped(who.givenName ?? posted?.firstName ?? who.email?.split('@')[0] ?? 'New'),
          last_name: capped(who.familyName ?? posted?.lastName ?? ''),
          roles: flow.roles ?? ['CLIENT'],
          email_confirmed_at: who.email && who.emailVerified ? now : null,
        },
        { ...identity, user_id: userId },
        now,
      )
    } catch (error) {
      // Another sign-in made the account or the identity at the same moment: the next try finds it.
      if (error instanceof EmailTakenError || error instanceof IdentityTakenError) throw new ProviderSignInError('sign_in_failed', 'Another sign-in with this account was under way: try again', 409)
      throw error
    }
    return userId
  }

  const addIdentity = async (identity: Parameters<OidcStore['addIdentity']>[0]) => {
    try {
      await store.addIdentity(identity)
    } catch (error) {
      if (error instanceof IdentityTakenError) throw new ProviderSignInError('identity_taken', 'This provider account signs in to another account already', 409)
      throw error
    }
  }

  return {
    async start() {
      const sweep = () => store.sweep(clock.now()).catch((error: unknown) => deps.log.warn({ err: error }, 'could not delete lapsed sign-ins with providers'))
      sweepTimer = setInterval(() => void sweep(), SWEEP_EVERY_MS)
      sweepTimer.unref()
    },
    async close() {
      clearInterval(sweepTimer)
    },

    providers: () => clients.names(),

    /**
     * Begins a sign-in (or, with `linkUserId`, a link) with a provider: stores the flow's checks
     * and answers the provider's address to send the user to.
     */
    async begin(provider: string, options: { appRedirect?: string; roles?: Role[]; linkUserId?: string }): Promise<string> {
      mustKnow(provider)
      checkRedirect(options.appRedirect)
      const state = oauth.randomState()
      const checks = { state, nonce: oauth.randomNonce(), codeVerifier: oauth.randomPKCECodeVerifier() }
      let url: URL
      try {
        url = await clients.authorizationUrl(provider, checks)
      } catch (error) {
        deps.log.warn({ err: error, provider }, 'could not reach the provider')
        throw new UnavailableError('The provider can\'t be reached now: try again later', 'provider_unavailable')
      }
      await store.addFlow({
        state_hash: sha256(state),
        provider,
        nonce: checks.nonce,
        code_verifier: checks.codeVerifier,
        app_redirect: options.appRedirect ?? null,
        roles: options.roles ?? null,
        link_user_id: options.linkUserId ?? null,
        expires_at: new Date(clock.now().getTime() + FLOW_TTL_MS),
      })
      return url.toString()
    },

    /**
     * The provider's answer: the flow of its state is taken (once), the code exchanged and the ID
     * token checked; then the account is found, linked or made. Throws ProviderSignInError, with
     * the flow's app address when it was found (the app is told where it waits). `form`: what a
     * provider that posts its answer (form_post) put beside it; its `user` (Apple's, the name at
     * the first sign-in) may name an account made now, and is read for nothing else.
     */
    async callback(provider: string, query: string, form: { user?: string } = {}): Promise<CallbackOutcome> {
      mustKnow(provider)
      const posted = clients.postsForm(provider) ? postedName(form.user) : undefined
      const state = new URLSearchParams(query).get('state')
      const flow = state ? await store.takeFlow(sha256(state), provider, clock.now()) : undefined
      if (!flow) throw new ProviderSignInError('sign_in_failed', 'This sign-in is unknown, used or expired: start again', 400)
      try {
        let who: ProviderIdentity
        try {
          who = await clients.finish(provider, query, { state: state!, nonce: flow.nonce, codeVerifier: flow.code_verifier })
        } catch (error) {
          if (error instanceof ProviderUnreachableError) throw new ProviderSignInError('provider_unavailable', 'The provider can\'t be reached now: try again later', 503)
          if (error instanceof ProviderAnswerError) {
            deps.log.info({ provider, reason: error.message }, 'a sign-in with a provider did not check out')
            throw new ProviderSignInError('sign_in_failed', 'The provider\'s answer did not check out: start again', 400)
          }
          throw error
        }
        if (flow.link_user_id) {
          const known = await store.findIdentity(who.issuer, who.subject)
          if (known && known.user_id !== flow.link_user_id) throw new ProviderSignInError('identity_taken', 'This provider account signs in to another account already', 409)
          const now = clock.now()
          const identity = known ?? { id: uuidv7(), user_id: flow.link_user_id, provider, issuer: who.issuer, subject: who.subject, email: who.email, created_at: now, last_used_at: now }
          if (!known) await addIdentity(identity)
          return { kind: 'linked', appRedirect: flow.app_redirect, identity: view(identity) }
        }
        const userId = await accountFor(provider, who, flow, posted)
        return { kind: 'signed_in', appRedirect: flow.app_redirect, userId }
      } catch (error) {
        if (error instanceof ProviderSignInError) error.appRedirect = flow.app_redirect
        throw error
      }
    },

    /** A one-minute, single-use code for the app to exchange (POST /auth/exchange). */
    async exchangeCode(userId: string, context: SignInContext): Promise<string> {
      const code = randomBytes(32).toString('base64url')
      await store.addExchangeCode({ code_hash: sha256(code), user_id: userId, user_agent: context.userAgent?.slice(0, 300) ?? null, expires_at: new Date(clock.now().getTime() + EXCHANGE_CODE_TTL_MS) })
      return code
    },

    /** Exchanges the code for a session: the same answer as a sign-in with a password. */
    async exchange(code: string, context: SignInContext): Promise<SignedIn> {
      const found = await store.takeExchangeCode(sha256(code), clock.now())
      if (!found) throw new InvalidInputError('The code is unknown, used or expired', [{ field: 'body/code', message: 'is not a current code' }], 'invalid_exchange_code')
      return deps.sessions.signInAs(found.user_id, context)
    },

    async signInAs(userId: string, context: SignInContext): Promise<SignedIn> {
      return deps.sessions.signInAs(userId, context)
    },

    async list(userId: string, query: { limit?: number; cursor?: string }) {
      const limit = query.limit ?? 20
      const after = decodeCursor(query.cursor, CursorPosition)
      const rows = await store.list(userId, limit, after?.id)
      const page = pageOf(rows, limit, (last) => ({ id: last.id }))
      return { items: page.items.map(view), next_cursor: page.next_cursor }
    },

    async unlink(userId: string, id: string): Promise<void> {
      const result = await store.remove(userId, id)
      if (result === 'not_found') throw new NotFoundError('You have no linked sign-in with this id', 'identity_not_found')
      if (result === 'last') throw new ConflictError('This is the account\'s only way to sign in and it has no password: link another provider first', 'last_sign_in_method')
    },

    /** An account deleted: its identities go, so the provider account can make a new one. */
    async forgetUser(userId: string): Promise<void> {
      await store.forgetUser(userId)
    },
  }
}

export type OidcService = ReturnType<typeof createOidcService>
