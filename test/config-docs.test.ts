import { generateKeyPairSync } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { describe, expect, it } from 'vitest'
import { envExample, readmeWithSettings } from '../src/cli/config-docs.js'
import { ConfigError, loadConfig } from '../src/config.js'
import { SETTINGS, type SettingSpec } from '../src/settings.js'

// src/settings.ts is the one list of settings: the loader reads each, and `.env.example` and the
// README's table are generated from it (`npm run config:generate`).

const problemsOf = (env: Record<string, string>): string => {
  try {
    loadConfig(env)
    return ''
  } catch (error) {
    if (error instanceof ConfigError) return error.message
    throw error
  }
}

describe('settings', () => {
  it('.env.example and the README table are what `npm run config:generate` writes from src/settings.ts', async () => {
    expect(await readFile('.env.example', 'utf8')).toBe(envExample())
    const readme = await readFile('README.md', 'utf8')
    expect(readmeWithSettings(readme)).toBe(readme)
  })

  it('every listed setting is read by the loader, which checks it against its kind', () => {
    const bad: Record<SettingSpec['type'], string | undefined> = { int: '1.5', bool: 'maybe', url: 'not a url', enum: 'none-of-these', proxies: '999.1.1.1', string: undefined }
    for (const [name, spec] of Object.entries(SETTINGS as Record<string, SettingSpec>)) {
      const value = bad[spec.type]
      if (value === undefined) continue
      expect(problemsOf({ [name]: value }), name).toContain(name)
    }
    // The free-text ones land in the config as given.
    const config = loadConfig({ HOST: '127.0.0.1', REDIS_PREFIX: 'test:', DATA_DIR: '/tmp/x', CORS_ORIGINS: 'https://a.example, https://b.example', PRODUCT_NAME: 'Fixit', MAIL_FROM: 'Fixit <hi@fixit.example>', MAIL_DIR: '/tmp/mails' })
    expect(config).toMatchObject({ host: '127.0.0.1', redisPrefix: 'test:', dataDir: '/tmp/x', corsOrigins: ['https://a.example', 'https://b.example'], productName: 'Fixit', mailFrom: 'Fixit <hi@fixit.example>', mailDir: '/tmp/mails' })
    expect(loadConfig({ STRIPE_SECRET_KEY: 'sk_test_1', STRIPE_WEBHOOK_SECRET: 'whsec_1' })).toMatchObject({ stripeSecretKey: 'sk_test_1', stripeWebhookSecret: 'whsec_1' })
    // Without MAIL_DIR, mails go beside the database.
    expect(loadConfig({ DATA_DIR: '/tmp/x' }).mailDir).toBe('/tmp/x/mail')
    const strings = Object.entries(SETTINGS as Record<string, SettingSpec>).filter(([, spec]) => spec.type === 'string').map(([name]) => name)
    expect(strings.sort()).toEqual(['CORS_ORIGINS', 'DATA_DIR', 'HOST', 'MAIL_DIR', 'MAIL_FROM', 'OIDC_APP_REDIRECTS', 'OIDC_PROVIDERS', 'PRODUCT_NAME', 'PUSH_ENDPOINT_ALLOW', 'REDIS_PREFIX', 'STRIPE_SECRET_KEY', 'STRIPE_WEBHOOK_SECRET', 'TOTP_ENCRYPTION_KEY', 'VAPID_PRIVATE_KEY', 'VAPID_PUBLIC_KEY', 'VAPID_SUBJECT'])
    // Push hosts allowed past the address check: a list, in lower case.
    expect(loadConfig({ PUSH_ENDPOINT_ALLOW: ' Push.Internal.example:8443, 10.0.0.7 ' }).pushEndpointAllow).toEqual(['push.internal.example:8443', '10.0.0.7'])
    expect(loadConfig({ VAPID_PUBLIC_KEY: 'pub', VAPID_PRIVATE_KEY: 'priv', VAPID_SUBJECT: 'https://ops.example' })).toMatchObject({ vapidPublicKey: 'pub', vapidPrivateKey: 'priv', vapidSubject: 'https://ops.example' })
    // The keys go in pairs; the subject is a mailto: or https: URL.
    expect(problemsOf({ VAPID_PUBLIC_KEY: 'pub' })).toContain('VAPID_PUBLIC_KEY')
    expect(problemsOf({ VAPID_SUBJECT: 'ops@example' })).toContain('VAPID_SUBJECT')
    // The structured ones are checked by their own rules.
    expect(problemsOf({ OIDC_PROVIDERS: '{not json' })).toContain('OIDC_PROVIDERS')
    expect(problemsOf({ OIDC_APP_REDIRECTS: 'not a url' })).toContain('OIDC_APP_REDIRECTS')
    expect(problemsOf({ TOTP_ENCRYPTION_KEY: 'c2hvcnQ=' })).toContain('TOTP_ENCRYPTION_KEY')
  })

  it('takes an http: provider only on a loopback address and with allow_http, and providers only with PUBLIC_URL', () => {
    const provider = (entry: Record<string, unknown>) => JSON.stringify({ local: { client_id: 'app', client_secret: 'secret', ...entry } })
    const withUrl = { PUBLIC_URL: 'https://api.example.com' }
    expect(problemsOf({ ...withUrl, OIDC_PROVIDERS: provider({ issuer: 'http://127.0.0.1:9000' }) })).toContain('allow_http')
    expect(problemsOf({ ...withUrl, OIDC_PROVIDERS: provider({ issuer: 'http://idp.example.com', allow_http: true }) })).toContain('loopback')
    expect(problemsOf({ OIDC_PROVIDERS: provider({ issuer: 'https://idp.example.com' }) })).toContain('PUBLIC_URL')
    expect(problemsOf({ ...withUrl, OIDC_PROVIDERS: provider({ issuer: 'https://idp.example.com', private_key: 'pem' }) })).toContain('either client_secret or private_key')
    const config = loadConfig({ ...withUrl, OIDC_PROVIDERS: provider({ issuer: 'http://127.0.0.1:9000', allow_http: true }) })
    expect(config.oidcProviders).toEqual([{ name: 'local', issuer: 'http://127.0.0.1:9000', clientId: 'app', clientSecret: 'secret', privateKey: undefined, keyId: undefined, scopes: ['openid', 'email', 'profile'], allowHttp: true, responseMode: 'query' }])
    expect(problemsOf({ ...withUrl, OIDC_PROVIDERS: provider({ issuer: 'https://idp.example.com', response_mode: 'fragment' }) })).toContain('response_mode')
  })

  it('takes Apple\'s shape: a P-256 key with its key id and the team id, which sign the client secret', () => {
    const withUrl = { PUBLIC_URL: 'https://api.example.com' }
    const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
    const apple = (entry: Record<string, unknown>) => JSON.stringify({ apple: { issuer: 'https://appleid.apple.com', client_id: 'com.example.app', ...entry } })
    const config = loadConfig({ ...withUrl, OIDC_PROVIDERS: apple({ team_id: 'ABCDE12345', key_id: 'ABC123DEFG', private_key: p256, response_mode: 'form_post' }) })
    expect(config.oidcProviders).toMatchObject([{ name: 'apple', clientId: 'com.example.app', teamId: 'ABCDE12345', keyId: 'ABC123DEFG', privateKey: p256, responseMode: 'form_post' }])
    expect(problemsOf({ ...withUrl, OIDC_PROVIDERS: apple({ team_id: 'ABCDE12345', key_id: 'ABC123DEFG', private_key: p384 }) })).toContain('EC P-256')
    expect(problemsOf({ ...withUrl, OIDC_PROVIDERS: apple({ team_id: 'ABCDE12345', private_key: p256 }) })).toContain('key_id is required with team_id')
    expect(problemsOf({ ...withUrl, OIDC_PROVIDERS: apple({ team_id: 'ABCDE12345', client_secret: 'secret' }) })).toContain('team_id goes with private_key')
    expect(problemsOf({ ...withUrl, OIDC_PROVIDERS: apple({ team_id: 'ABCDE12345', key_id: 'K', private_key: 'not a key' }) })).toContain('private_key is not a private key')
    // Nothing of the key in the problems.
    expect(problemsOf({ ...withUrl, OIDC_PROVIDERS: apple({ team_id: 'ABCDE12345', key_id: 'K', private_key: p384 }) })).not.toContain(p384.split('\n')[1])
  })

  it('the defaults of .env.example are the loader\'s: loading the file changes nothing', async () => {
    const env = Object.fromEntries(
      (await readFile('.env.example', 'utf8'))
        .split('\n')
        .filter((line) => /^[A-Z_]+=/.test(line))
        .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
    )
    expect(Object.keys(env).length).toBeGreaterThan(30)
    expect(loadConfig(env)).toEqual(loadConfig({}))
  })
})
