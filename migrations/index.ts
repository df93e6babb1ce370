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
import * as paymentsEscrow from './0030_payments_escrow.js'

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
  '0030_payments_escrow': paymentsEscrow,
}
