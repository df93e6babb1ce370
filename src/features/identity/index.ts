// What other features may use of identity: the service (mailed tokens, devices).
export { createIdentityService, type IdentityService } from './service.js'
