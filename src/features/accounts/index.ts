// What other features may use of accounts: its service and store, users as stored and as shown.
export { createAccountsService, type AccountsService, type ShownUser, type SummarizedUser } from './service.js'
export { createAccountsStore, EmailTakenError, type AccountsStore, type Role, type UserRow } from './store.js'
export { AnyRole, Email, Password, SelfRole, User, UserSummary, type UserSummaryView, type UserView } from './schemas.js'
export { checkNewPassword, isCommonPassword, loadPasswordPolicy, PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH } from './password-policy.js'
