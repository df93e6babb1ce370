import { randomBytes, type KeyObject } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { decodeProtectedHeader, jwtVerify } from 'jose'
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
  /** The same for a client asking for response_mode=form_post: where the browser posts, and the form. */
  signInPosted(authorizationUrl: string, subject: string): Promise<{ url: URL; form: URLSearchParams }>
  /** The signed client secrets that reached the token endpoint, in order, with the check's outcome. */
  signedSecrets: { secret: string; accepted: boolean; reason?: string }[]
  /** Changes each token request's form before the provider reads it (a man in the middle); undefined: none. */
  rewriteTokenRequest: ((form: URLSearchParams) => void) | undefined
  /** Changes each token answer (JSON) before the client gets it; undefined: none. */
  rewriteTokenResponse: ((body: Record<string, unknown>) => void) | undefined
  close(): Promise<void>
}

/**
 * A client that authenticates as Apple asks: its client_secret is an ES256 JWT signed with the
 * team's key (header kid; iss the team id, sub the client id, aud the issuer; unexpired).
 */
export interface SignedSecretClient {
  client_id: string
  redirect_uris: string[]
  team_id: string
  key_id: string
  public_key: KeyObject
}

export async function startOidcProvider(options: {
  /** Clients with a secret (client_secret_post), or with `jwks` and `token_endpoint_auth_method: 'private_key_jwt'`. */
  clients: { client_id: string; client_secret?: string; redirect_uris: string[]; jwks?: { keys: object[] }; token_endpoint_auth_method?: 'client_secret_post' | 'private_key_jwt' }[]
  signedSecretClients?: SignedSecretClient[]
  /** The time the signed secrets are checked at (the app's clock in a test that moves it). */
  now?: () => Date
}): Promise<TestProvider> {
  const port = await freePort()
  const issuer = `http://127.0.0.1:${port}`
  const accounts = new Map<string, ProviderAccount>()
  // oidc-provider compares a client_secret_post secret with the one it holds. A signed one is
  // checked here, as Apple checks it, and swapped for the held one only when it checks out.
  const signedClients = (options.signedSecretClients ?? []).map((c) => ({ ...c, held: randomBytes(24).toString('base64url') }))
  const provider = new Provider(issuer, {
    clients: [
      ...options.clients,
      ...signedClients.map((c) => ({ client_id: c.client_id, client_secret: c.held, redirect_uris: c.redirect_uris })),
    ].map((c) => ({ token_endpoint_auth_method: 'client_secret_post', ...c, grant_types: ['authorization_code'], response_types: ['code'] })),
    findAccount: async (_ctx, id) => ({ accountId: id, claims: async () => ({ sub: id, ...accounts.get(id) }) }),
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['given_name', 'family_name'] },
    // The claims go in the ID token itself, as Google's and Apple's do.
    conformIdTokenClaims: false,
    cookies: { keys: ['a test key, not a secret'] },
    features: { devInteractions: { enabled: true } },
  })
  // Its warnings about development settings are expected here.
  provider.on('server_error', (_ctx, error) => console.error('oidc-provider:', error))
  const signedSecrets: TestProvider['signedSecrets'] = []
  const handle = provider.callback()
  const hooks = {
    rewriteTokenRequest: undefined as TestProvider['rewriteTokenRequest'],
    rewriteTokenResponse: undefined as TestProvider['rewriteTokenResponse'],
  }

  /** Checks a signed client secret as Apple does; answers why it is refused, or null. */
  async function refusal(client: SignedSecretClient, secret: string): Promise<string | null> {
    try {
      if (decodeProtectedHeader(secret).kid !== client.key_id) return 'kid'
      await jwtVerify(secret, client.public_key, {
        algorithms: ['ES256'],
        issuer: client.team_id,
        subject: client.client_id,
        audience: issuer,
        requiredClaims: ['iat', 'exp'],
        currentDate: options.now?.(),
      })
      return null
    } catch (error) {
      return (error as Error).message
    }
  }

  /** The token endpoint's request, read here: its secret checked, and the test's changes made. */
  async function tokenRequest(req: IncomingMessage, res: ServerResponse) {
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    const form = new URLSearchParams(Buffer.concat(chunks).toString())
    const signed = signedClients.find((c) => c.client_id === form.get('client_id'))
    if (signed) {
      const secret = form.get('client_secret') ?? ''
      const reason = await refusal(signed, secret)
      signedSecrets.push({ secret, accepted: reason === null, ...(reason ? { reason } : {}) })
      form.set('client_secret', reason === null ? signed.held : 'refused')
    }
    hooks.rewriteTokenRequest?.(form)
    // oidc-provider reads a body parsed upstream from req.body once the stream is consumed.
    ;(req as IncomingMessage & { body?: string }).body = form.toString()
    if (hooks.rewriteTokenResponse) {
      const rewrite = hooks.rewriteTokenResponse
      const end = res.end.bind(res) as (chunk?: unknown) => ServerResponse
      res.end = ((chunk?: unknown) => {
        if (res.statusCode !== 200 || chunk === undefined) return end(chunk)
        const body = JSON.parse(String(chunk)) as Record<string, unknown>
        rewrite(body)
        const text = JSON.stringify(body)
        res.setHeader('content-length', Buffer.byteLength(text))
        return end(text)
      }) as ServerResponse['end']
    }
    handle(req, res)
  }

  const server: Server = createServer((req, res) => {
    if (req.method === 'POST' && req.url === '/token') void tokenRequest(req, res)
    else void handle(req, res)
  })
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))

  async function signIn(authorizationUrl: string, subject: string): Promise<URL> {
    const back = await browse(authorizationUrl, subject)
    if (back.form) throw new Error('the provider posted its answer as a form: use signInPosted')
    return back.url
  }

  async function signInPosted(authorizationUrl: string, subject: string): Promise<{ url: URL; form: URLSearchParams }> {
    const back = await browse(authorizationUrl, subject)
    if (!back.form) throw new Error('the provider answered in the query, not as a form')
    return { url: back.url, form: back.form }
  }

  /** Where the browser ends up at the client: an address, and the form it posts there (form_post). */
  async function browse(authorizationUrl: string, subject: string): Promise<{ url: URL; form?: URLSearchParams }> {
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
        if (next.origin !== issuer) return { url: next }
        url = next
        form = undefined
        continue
      }
      const page = await res.text()
      // form_post: a page whose form the browser posts to the client at once (its script submits it).
      const posted = /<form method="post" action="([^"]+)">/.exec(page)
      const unescape = (text: string) => text.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&')
      if (posted && new URL(unescape(posted[1]!)).origin !== issuer) {
        const fields = [...page.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)"\/>/g)].map(([, name, value]) => [name!, unescape(value!)])
        return { url: new URL(unescape(posted[1]!)), form: new URLSearchParams(fields) }
      }
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
    signInPosted,
    signedSecrets,
    get rewriteTokenRequest() {
      return hooks.rewriteTokenRequest
    },
    set rewriteTokenRequest(rewrite) {
      hooks.rewriteTokenRequest = rewrite
    },
    get rewriteTokenResponse() {
      return hooks.rewriteTokenResponse
    },
    set rewriteTokenResponse(rewrite) {
      hooks.rewriteTokenResponse = rewrite
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}
