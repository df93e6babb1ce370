import { Type } from 'typebox'
import { Email, Password } from '../accounts/index.js'

const Token = Type.String({ minLength: 1, maxLength: 200, description: 'The token of the link mailed (its `token` query parameter)' })

export const TokenBody = Type.Object({ token: Token }, { additionalProperties: false, examples: [{ token: 'pX0xv3V8kq2mS5bQ9rW1tY4uZ7aC6dE0fG3hJ8kL2nM' }] })

export const ForgotBody = Type.Object({ email: Email }, { additionalProperties: false, examples: [{ email: 'ana@example.com' }] })

export const ResetBody = Type.Object({ token: Token, password: Password }, { additionalProperties: false, examples: [{ token: 'pX0xv3V8kq2mS5bQ9rW1tY4uZ7aC6dE0fG3hJ8kL2nM', password: 'a new and long passphrase' }] })

export const Accepted = Type.Object(
  { message: Type.String() },
  { description: 'Taken; what follows comes by mail', examples: [{ message: 'If an account has this email, a link to reset its password is on its way' }] },
)
