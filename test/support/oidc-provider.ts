import { createServer, type Server } from 'node:http'
import Provider from 'oidc-provider'
import { freePort } from './processes.js'

// A real OpenID Connect provider (oidc-provider) on a loopback port, for end-to-end sign-in tests,
// with its development interactions (a login form, a consent form) that signIn() fills in over
// HTTP as a browser would.

export interface ProviderAccount {
  email?: string
  email_verified?: boolean
  given_name?: string
  family_name?: string
}

export interface TestProvider {
  issuer: string
  /** Accounts by subject: what the provider says about each (set before signing in as it). */
  accounts: Map<string, ProviderAccount>
  /**
   * Opens the authorization URL as a browser would, signs in as `subject` and consents; answers
   * the URL the provider sent the browser back to (our callback, with its query).
   */
  signIn(authorizationUrl: string, subject: string): Promise<URL>
  close(): Promise<void>
}

export async function startOidcProvider(options: { clients: { client_id: string; client_secret: string; redirect_uris: string[] }[] }): Promise<TestProvider> {
  const port = await freePort()
  const issuer = `http://127.0.0.1:${port}`
  const accounts = new Map<string, ProviderAccount>()
  const provider = new Provider(issuer, {
    clients: options.clients.map((c) => ({ ...c, grant_types: ['authorization_code'], response_types: ['code'], token_endpoint_auth_method: 'client_secret_post' })),
    findAccount: async (_ctx, id) => ({ accountId: id, claims: async () => ({ sub: id, ...accounts.get(id) }) }),
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['given_name', 'family_name'] },
    // The claims go in the ID token itself, as Google's and Apple's do.
    conformIdTokenClaims: false,
    cookies: { keys: ['a test key, not a secret'] },
    features: { devInteractions: { enabled: true } },
  })
  // Its warnings about development settings are expected here.
  provider.on('server_error', (_ctx, error) => console.error('oidc-provider:', error))
  const server: Server = createServer(provider.callback())
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))

  async function signIn(authorizationUrl: string, subject: string): Promise<URL> {
    const cookies = new Map<string, string>()
    let url = new URL(authorizationUrl)
    let form: URLSearchParams | undefined
    for (let step = 0; step < 12; step++) {
      const res = await fetch(url, {
        method: form ? 'POST' : 'GET',
        redirect: 'manual',
        headers: {
          cookie: [...cookies].map(([name, value]) => `${name}=${value}`).join('; '),
          ...(form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
        },
        body: form?.toString(),
      })
      for (const line of res.headers.getSetCookie()) {
        const [pair] = line.split(';')
        const at = pair!.indexOf('=')
        cookies.set(pair!.slice(0, at), pair!.slice(at + 1))
      }
      if (res.status >= 300 && res.status < 400) {
        await res.arrayBuffer()
        const next = new URL(res.headers.get('location')!, url)
        // Back to the client: the sign-in at the provider is done.
        if (next.origin !== issuer) return next
        url = next
        form = undefined
        continue
      }
      const page = await res.text()
      if (res.status !== 200) throw new Error(`the provider answered ${res.status}: ${page.slice(0, 500)}`)
      // The development interactions: a login form, then a consent form, both posted to this page.
      form = page.includes('name="login"') ? new URLSearchParams({ prompt: 'login', login: subject, password: 'any' }) : new URLSearchParams({ prompt: 'consent' })
    }
    throw new Error('the provider did not send the browser back')
  }

  return {
    issuer,
    accounts,
    signIn,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}
