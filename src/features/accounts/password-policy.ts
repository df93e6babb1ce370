import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { InvalidInputError } from '../../errors.js'

// What a new password must be (OWASP ASVS 5.0, 6.2): 8 to 128 characters, no rules of
// composition, and not one of the common or breached passwords of the list shipped beside this
// file (no network call). 15 characters or more are recommended in the docs.

export const PASSWORD_MIN_LENGTH = 8
export const PASSWORD_MAX_LENGTH = 128

/** The list's file, beside this module (the build copies it into dist/). */
const listPath = () => join(dirname(fileURLToPath(import.meta.url)), 'common-passwords.txt')

let common: Set<string> | undefined
/** The list, read once (about 49,000 entries), compared without case. */
function commonPasswords(): Set<string> {
  common ??= new Set(
    readFileSync(listPath(), 'utf8')
      .split('\n')
      .filter((line) => line.length > 0 && !line.startsWith('# '))
      .map((line) => line.toLowerCase()),
  )
  return common
}

/** Characters as a person counts them (a surrogate pair is one). */
const lengthOf = (password: string) => [...password].length

/** Whether the password is on the shipped list of common and breached passwords (any case). */
export const isCommonPassword = (password: string) => commonPasswords().has(password.toLowerCase())

/** Throws a 400 naming `field` when the password may not be set. */
export function checkNewPassword(password: string, field = 'password'): void {
  const length = lengthOf(password)
  if (length < PASSWORD_MIN_LENGTH || length > PASSWORD_MAX_LENGTH) {
    throw new InvalidInputError(`Passwords are ${PASSWORD_MIN_LENGTH} to ${PASSWORD_MAX_LENGTH} characters`, [{ field: `body/${field}`, message: `must be ${PASSWORD_MIN_LENGTH} to ${PASSWORD_MAX_LENGTH} characters` }], length > PASSWORD_MAX_LENGTH ? 'password_too_long' : 'password_too_short')
  }
  if (isCommonPassword(password)) {
    throw new InvalidInputError('This password is on a list of common and breached passwords: choose another (a few unrelated words, 15 characters or more, make a strong one)', [{ field: `body/${field}`, message: 'is a common or breached password' }], 'password_too_common')
  }
}

/** Loads the list now (at start), so that the first sign-up does not wait for it. */
export function loadPasswordPolicy(): number {
  return commonPasswords().size
}
