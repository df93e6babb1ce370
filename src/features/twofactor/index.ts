// Two-factor sign-in with TOTP: its service and store.
export { createTwoFactorService, type TwoFactorService } from './service.js'
export { createTwoFactorStore } from './store.js'
