import { Type } from 'typebox'
import { Page, PageQuery, Timestamp, Uuid } from '../../http/schemas.js'
import { SelfRole } from '../accounts/index.js'

export const ProviderParams = Type.Object({ provider: Type.String({ minLength: 1, maxLength: 40, description: 'The provider\'s name, as GET /auth/providers lists it' }) })

export const ProviderList = Type.Object(
  {
    items: Type.Array(
      Type.Object({
        name: Type.String(),
        start_url: Type.String({ description: 'Where a sign-in with it begins (GET; add `redirect_uri` and `role`)' }),
      }),
    ),
  },
  { examples: [{ items: [{ name: 'google', start_url: '/auth/google/start' }] }] },
)

const RedirectUri = Type.String({ minLength: 1, maxLength: 2000, description: 'The app\'s own address to come back to, one of OIDC_APP_REDIRECTS exactly. Without it the callback answers the tokens itself' })

export const StartQuery = Type.Object(
  {
    redirect_uri: Type.Optional(RedirectUri),
    role: Type.Optional(SelfRole),
  },
  { additionalProperties: false },
)

export const LinkQuery = Type.Object(
  {
    link: Type.Literal('1', { description: 'Links the provider to the signed-in caller' }),
    redirect_uri: Type.Optional(RedirectUri),
  },
  { additionalProperties: false },
)

export const AuthorizationUrl = Type.Object(
  { authorization_url: Type.String({ description: 'Open it in a browser: the provider signs the user in and comes back to the callback' }) },
  { examples: [{ authorization_url: 'https://accounts.google.com/o/oauth2/v2/auth?client_id=123.apps.googleusercontent.com&scope=openid+email+profile&response_type=code&redirect_uri=https%3A%2F%2Fapi.example.com%2Fauth%2Fgoogle%2Fcallback&state=Qm9&nonce=x1Y&code_challenge=E9Mel&code_challenge_method=S256' }] },
)

export const CallbackQuery = Type.Object(
  {
    code: Type.Optional(Type.String({ maxLength: 4096 })),
    state: Type.Optional(Type.String({ maxLength: 4096 })),
    iss: Type.Optional(Type.String({ maxLength: 4096 })),
    error: Type.Optional(Type.String({ maxLength: 4096 })),
    error_description: Type.Optional(Type.String({ maxLength: 4096 })),
  },
  { description: 'The provider\'s authorization response' },
)

/** The same answer posted as a form (response_mode=form_post); Apple adds `user` (the name, the first time), which may name a new account. */
export const CallbackForm = Type.Object(
  {
    code: Type.Optional(Type.String({ maxLength: 4096 })),
    state: Type.Optional(Type.String({ maxLength: 4096 })),
    iss: Type.Optional(Type.String({ maxLength: 4096 })),
    error: Type.Optional(Type.String({ maxLength: 4096 })),
    error_description: Type.Optional(Type.String({ maxLength: 4096 })),
    user: Type.Optional(Type.String({ maxLength: 4096, description: 'Apple\'s, at the first sign-in: `{"name": {"firstName", "lastName"}, "email"}` as JSON. Unsigned: it only names an account the sign-in makes; its email is never read' })),
  },
  { description: 'The provider\'s authorization response, posted as a form' },
)

export const Identity = Type.Object(
  {
    id: Uuid,
    provider: Type.String({ description: 'The provider\'s name in OIDC_PROVIDERS' }),
    issuer: Type.String(),
    email: Type.Union([Type.String(), Type.Null()], { description: 'The email the provider last gave' }),
    created_at: Timestamp,
    last_used_at: Timestamp,
  },
  { examples: [{ id: '01938d12-7a2b-7c3d-8e4f-0a1b2c3d4e5f', provider: 'google', issuer: 'https://accounts.google.com', email: 'ana@example.com', created_at: '2026-12-01T09:31:00.000Z', last_used_at: '2026-12-07T08:50:00.000Z' }] },
)

export const Linked = Type.Object({ linked: Type.Literal(true), identity: Identity }, { description: 'A link with no app address: the identity linked' })

export const ExchangeBody = Type.Object(
  { code: Type.String({ minLength: 1, maxLength: 200, description: 'The `code` the callback sent to the app\'s address' }) },
  { additionalProperties: false, examples: [{ code: 'bQ0x7Jd2mV9rT4kP1sW8yA3eN6hL5uC0fZ2gR7iO9qE' }] },
)

export const IdentityListQuery = Type.Object({ ...PageQuery }, { additionalProperties: false })
export const IdentityList = Page(Identity)
