import { createPrivateKey } from 'node:crypto'
import { SignJWT } from 'jose'
import * as client from 'openid-client'
import type { OidcProviderConfig } from '../config.js'

// Sign-in with OpenID Connect providers, through openid-client: discovery from the issuer, the
// authorization code flow with PKCE (S256), state and nonce, and the ID token checked (signature,
// issuer, audience, expiry, nonce) by the library. Only an issuer configured with `allow_http`,
// which the config accepts on loopback addresses alone, is reached over plain HTTP.

/** What a provider vouches for about the person who signed in. */
export interface ProviderIdentity {
  issuer: string
  subject: string
  email: string | null
  emailVerified: boolean
  givenName: string | null
  familyName: string | null
}

/** A provider's answer did not check out (state, code, ID token...): the sign-in failed. */
export class ProviderAnswerError extends Error {}
/** The provider could not be reached, or its discovery failed. */
export class ProviderUnreachableError extends Error {}

export interface OidcClients {
  names(): string[]
  has(name: string): boolean
  /** Whether the provider is asked to post its answer as a form (response_mode form_post). */
  postsForm(name: string): boolean
  /** The address to send the user to, for a flow with these checks. */
  authorizationUrl(name: string, checks: { state: string; nonce: string; codeVerifier: string }): Promise<URL>
  /** Takes the provider's answer (the callback's query) and answers who signed in. */
  finish(name: string, query: string, checks: { state: string; nonce: string; codeVerifier: string }): Promise<ProviderIdentity>
}

/** Apple's limit is six months; a short life keeps a leaked secret of little use. */
const SIGNED_SECRET_LIFETIME_S = 60 * 60
/** A secret is signed anew once less than this is left of its life (a token request in flight stays inside it). */
const SIGNED_SECRET_RENEW_BEFORE_S = 5 * 60

/**
 * Apple's client authentication: the client secret is a JWT signed with the team's key (ES256;
 * header kid; iss the team id, sub the client id, aud the issuer, iat and a short exp), sent as
 * client_secret_post. Kept while it has time left, then signed anew.
 */
function signedClientSecret(provider: OidcProviderConfig, now: () => Date): client.ClientAuth {
  const key = createPrivateKey(provider.privateKey!)
  let current: { secret: string; renewAt: number } | undefined
  const secret = async () => {
    const at = Math.floor(now().getTime() / 1000)
    if (!current || at >= current.renewAt) {
      const signed = await new SignJWT({})
        .setProtectedHeader({ alg: 'ES256', kid: provider.keyId! })
        .setIssuer(provider.teamId!)
        .setSubject(provider.clientId)
        .setAudience(provider.issuer)
        .setIssuedAt(at)
        .setExpirationTime(at + SIGNED_SECRET_LIFETIME_S)
        .sign(key)
      current = { secret: signed, renewAt: at + SIGNED_SECRET_LIFETIME_S - SIGNED_SECRET_RENEW_BEFORE_S }
    }
    return current.secret
  }
  // openid-client awaits the method (its type says void): the signing is asynchronous.
  return (async (_server: client.ServerMetadata, metadata: client.ClientMetadata, body: URLSearchParams) => {
    body.set('client_id', metadata.client_id)
    body.set('client_secret', await secret())
  }) as unknown as client.ClientAuth
}

async function clientAuthentication(provider: OidcProviderConfig, now: () => Date): Promise<client.ClientAuth> {
  if (provider.clientSecret) return client.ClientSecretPost(provider.clientSecret)
  if (provider.teamId) return signedClientSecret(provider, now)
  const key = createPrivateKey(provider.privateKey!)
  const algorithm = key.asymmetricKeyType === 'ec' ? { name: 'ECDSA', namedCurve: 'P-256' } : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }
  // Node's CryptoKey and the DOM's are the same object under two type names.
  const cryptoKey = key.toCryptoKey(algorithm, false, ['sign']) as unknown as client.CryptoKey
  return client.PrivateKeyJwt({ key: cryptoKey, kid: provider.keyId })
}

/** Why an answer was refused, in words fit for a log line: the library's message, the claim or OAuth error it names (never a value). */
function reasonOf(error: unknown): string {
  // openid-client wraps the check that failed (oauth4webapi's error, naming the claim) in a general one.
  const outer = error as { message?: string; error?: unknown; cause?: unknown }
  const inner = outer.cause instanceof Error ? (outer.cause as Error & { cause?: { claim?: unknown } }) : undefined
  const claim = inner?.cause?.claim
  const details = [typeof outer.error === 'string' ? outer.error : null, typeof claim === 'string' ? `claim ${claim}` : null].filter(Boolean)
  return `${inner?.message ?? outer.message ?? 'unknown'}${details.length > 0 ? ` (${details.join(', ')})` : ''}`
}

const text = (value: unknown) => (typeof value === 'string' && value.trim() !== '' ? value.trim() : null)

export function createOidcClients(providers: OidcProviderConfig[], publicUrl: string | undefined, now: () => Date = () => new Date()): OidcClients {
  const byName = new Map(providers.map((p) => [p.name, p]))
  // Discovered once, on first use; a failure is forgotten so that the next sign-in tries again.
  const configurations = new Map<string, Promise<client.Configuration>>()
  const callbackUrl = (name: string) => `${publicUrl}/auth/${name}/callback`

  const configuration = (name: string): Promise<client.Configuration> => {
    const provider = byName.get(name)!
    let found = configurations.get(name)
    if (!found) {
      found = (async () => {
        const auth = await clientAuthentication(provider, now)
        return client.discovery(new URL(provider.issuer), provider.clientId, { redirect_uris: [callbackUrl(name)] }, auth, {
          // The ID token's signature is checked too (against the provider's published keys), not
          // only its claims: TLS alone would vouch for it, but not for a provider reached over http.
          execute: [...(provider.allowHttp ? [client.allowInsecureRequests] : []), client.enableNonRepudiationChecks],
          timeout: 10,
        })
      })()
      configurations.set(name, found)
      found.catch(() => configurations.delete(name))
    }
    return found.catch((error: unknown) => {
      throw new ProviderUnreachableError(`discovery of ${provider.issuer} failed: ${(error as Error).message}`)
    })
  }

  return {
    names: () => [...byName.keys()],
    has: (name) => byName.has(name),
    postsForm: (name) => byName.get(name)?.responseMode === 'form_post',

    async authorizationUrl(name, checks) {
      const config = await configuration(name)
      return client.buildAuthorizationUrl(config, {
        redirect_uri: callbackUrl(name),
        scope: byName.get(name)!.scopes.join(' '),
        state: checks.state,
        nonce: checks.nonce,
        code_challenge: await client.calculatePKCECodeChallenge(checks.codeVerifier),
        code_challenge_method: 'S256',
        ...(byName.get(name)!.responseMode === 'form_post' ? { response_mode: 'form_post' } : {}),
      })
    },

    async finish(name, query, checks) {
      const config = await configuration(name)
      let tokens: Awaited<ReturnType<typeof client.authorizationCodeGrant>>
      try {
        tokens = await client.authorizationCodeGrant(config, new URL(`${callbackUrl(name)}${query}`), {
          pkceCodeVerifier: checks.codeVerifier,
          expectedState: checks.state,
          expectedNonce: checks.nonce,
          idTokenExpected: true,
        })
      } catch (error) {
        // Network failures are the provider's being away; anything else is an answer that did not check out.
        if (error instanceof TypeError || (error as { code?: string }).code === 'OAUTH_TIMEOUT') throw new ProviderUnreachableError((error as Error).message)
        throw new ProviderAnswerError(reasonOf(error))
      }
      const claims = tokens.claims()
      if (!claims) throw new ProviderAnswerError('the provider answered no ID token')
      let profile: Record<string, unknown> = claims
      // Some providers put the email only in the userinfo answer.
      if (text(claims.email) === null && config.serverMetadata().userinfo_endpoint) {
        try {
          profile = { ...(await client.fetchUserInfo(config, tokens.access_token, claims.sub)), ...claims }
        } catch {
          // Without userinfo the sign-in goes on with what the ID token says.
        }
      }
      const name_ = text(profile.name)
      return {
        issuer: claims.iss,
        subject: claims.sub,
        email: text(profile.email),
        emailVerified: profile.email_verified === true || profile.email_verified === 'true',
        givenName: text(profile.given_name) ?? name_?.split(' ')[0] ?? null,
        familyName: text(profile.family_name) ?? (name_?.includes(' ') ? name_.split(' ').slice(1).join(' ') : null),
      }
    },
  }
}
