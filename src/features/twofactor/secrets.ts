import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'

// TOTP secrets at rest. With TOTP_ENCRYPTION_KEY, each is sealed with AES-256-GCM under a random
// IV: `v1.<iv>.<tag>.<ciphertext>` (base64url), so a copy of the database alone does not give the
// codes away. Without a key it is kept as `plain.<secret>`; those still read once a key is set.

export function sealSecret(secret: string, key: Buffer | undefined): string {
  if (!key) return `plain.${secret}`
  const iv = randomBytes(12)
  const cipher = createCipheriv('aes-256-gcm', key, iv)
  const sealed = Buffer.concat([cipher.update(secret, 'utf8'), cipher.final()])
  return ['v1', iv.toString('base64url'), cipher.getAuthTag().toString('base64url'), sealed.toString('base64url')].join('.')
}

export function openSecret(stored: string, key: Buffer | undefined): string {
  const [version, ...parts] = stored.split('.')
  if (version === 'plain') return parts.join('.')
  if (version !== 'v1' || parts.length !== 3) throw new Error('a TOTP secret is stored in a form this version does not read')
  if (!key) throw new Error('a TOTP secret is sealed, and TOTP_ENCRYPTION_KEY is not set')
  const [iv, tag, sealed] = parts.map((part) => Buffer.from(part!, 'base64url')) as [Buffer, Buffer, Buffer]
  const decipher = createDecipheriv('aes-256-gcm', key, iv)
  decipher.setAuthTag(tag)
  return Buffer.concat([decipher.update(sealed), decipher.final()]).toString('utf8')
}
