import type { Migration } from 'kysely'
import * as accounts from './0001_accounts.js'
import * as liveState from './0002_live_state.js'
import * as locations from './0003_locations.js'
import * as messaging from './0004_messaging.js'
import * as jobs from './0005_jobs.js'
import * as unreadCounts from './0006_unread_counts.js'
import * as locationCards from './0007_location_cards.js'
import * as threadKeys from './0008_thread_keys.js'
import * as locationAnchors from './0009_location_anchors.js'
import * as sessions from './0010_sessions.js'
import * as emailConfirmation from './0011_email_confirmation.js'
import * as sendFunction from './0050_send_function.js'
import * as sendLeaner from './0051_send_leaner.js'
import * as sendBatch from './0052_send_batch.js'
import * as oidcIdentities from './0015_oidc_identities.js'
import * as twoFactor from './0016_two_factor.js'
import * as accountTokens from './0012_account_tokens.js'
import * as jobTracking from './0040_job_tracking.js'
import * as notifications from './0041_notifications.js'
import * as pushSubscriptions from './0042_push_subscriptions.js'
import * as phoneNumbers from './0043_phone_numbers.js'
import * as openRequests from './0044_open_requests.js'
import * as savedAlerts from './0045_saved_alerts.js'
import * as categories from './0020_categories.js'
import * as profiles from './0021_profiles.js'
import * as reviews from './0022_reviews.js'
import * as auditLog from './0023_audit_log.js'
import * as paymentsEscrow from './0030_payments_escrow.js'
import * as paymentsDurable from './0031_payments_durable.js'
import * as locationCategories from './0060_location_categories.js'

// Every migration, in order. A new one gets the next number and a line here.
export const migrations: Record<string, Migration> = {
  '0001_accounts': accounts,
  '0002_live_state': liveState,
  '0003_locations': locations,
  '0004_messaging': messaging,
  '0005_jobs': jobs,
  '0006_unread_counts': unreadCounts,
  '0007_location_cards': locationCards,
  '0008_thread_keys': threadKeys,
  '0009_location_anchors': locationAnchors,
  '0010_sessions': sessions,
  '0011_email_confirmation': emailConfirmation,
  '0050_send_function': sendFunction,
  '0051_send_leaner': sendLeaner,
  '0052_send_batch': sendBatch,
  '0015_oidc_identities': oidcIdentities,
  '0016_two_factor': twoFactor,
  '0012_account_tokens': accountTokens,
  '0040_job_tracking': jobTracking,
  '0041_notifications': notifications,
  '0042_push_subscriptions': pushSubscriptions,
  '0043_phone_numbers': phoneNumbers,
  '0044_open_requests': openRequests,
  '0045_saved_alerts': savedAlerts,
  '0020_categories': categories,
  '0021_profiles': profiles,
  '0022_reviews': reviews,
  '0023_audit_log': auditLog,
  '0030_payments_escrow': paymentsEscrow,
  '0031_payments_durable': paymentsDurable,
  '0060_location_categories': locationCategories,
}
