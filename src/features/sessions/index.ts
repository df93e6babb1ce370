// What other features may use of sessions: its service, who a request is, and how a token is kept.
export { createSessionsService, hashToken, type Auth, type SecondFactorGate, type SessionsService, type SignedIn, type SignInContext } from './service.js'
export { AccessToken, SignInRefused } from './schemas.js'
export { CHANGES_HEARD_WITHIN_MS } from './channel.js'
