// What other features may use of accounts: its service and store, users as stored and as shown.
export { createAccountsService, type AccountsService, type ShownUser, type SummarizedUser } from './service.js'
export { createAccountsStore, type AccountsStore, type Role, type UserRow } from './store.js'
export { AnyRole, User, UserSummary, type UserSummaryView, type UserView } from './schemas.js'
