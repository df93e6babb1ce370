// Sign-in with OpenID Connect providers: its service and store.
export { createOidcService, type OidcService } from './service.js'
export { createOidcStore } from './store.js'
