// What other features and the composition root use of admin: the audit log, the admin scope.
export { createAuditStore, type AdminContext, type AuditEntry, type AuditStore } from './audit.js'
export { createAdminService, type AdminService } from './service.js'
export { adminContext, adminOnly } from './scope.js'
