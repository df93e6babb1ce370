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
    const config = loadConfig({ HOST: '127.0.0.1', REDIS_PREFIX: 'test:', DATA_DIR: '/tmp/x', CORS_ORIGINS: 'https://a.example, https://b.example', STRIPE_SECRET_KEY: 'sk_test_1', STRIPE_WEBHOOK_SECRET: 'whsec_1' })
    expect(config).toMatchObject({ host: '127.0.0.1', redisPrefix: 'test:', dataDir: '/tmp/x', corsOrigins: ['https://a.example', 'https://b.example'], stripeSecretKey: 'sk_test_1', stripeWebhookSecret: 'whsec_1' })
    const strings = Object.entries(SETTINGS as Record<string, SettingSpec>).filter(([, spec]) => spec.type === 'string').map(([name]) => name)
    expect(strings.sort()).toEqual(['CORS_ORIGINS', 'DATA_DIR', 'HOST', 'REDIS_PREFIX', 'STRIPE_SECRET_KEY', 'STRIPE_WEBHOOK_SECRET'])
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
