// What each kind of event is, who hears it on which channel by default, and quiet hours.

export const CHANNELS = ['in_app', 'email', 'push', 'sms'] as const
export type Channel = (typeof CHANNELS)[number]
/** The channels delivered through the queue (in-app is an event on the user's sockets). */
export const QUEUED_CHANNELS = ['email', 'push', 'sms'] as const
export type QueuedChannel = (typeof QUEUED_CHANNELS)[number]

export type ChannelChoice = Record<Channel, boolean>

/**
 * The kinds of events, and their defaults: in-app and push for all, email for what concerns a job
 * or money (messages come often: a mail per conversation only when asked), SMS only when asked.
 * `sign_in` is mailed by the sign-in itself; its email setting sends no second mail.
 */
export const EVENT_TYPES = {
  message: { doc: 'A message from another user', defaults: { in_app: true, email: false, push: true, sms: false } },
  job_offer: { doc: 'A job offered to you, changed or quoted while it is an offer', defaults: { in_app: true, email: true, push: true, sms: false } },
  job_update: { doc: 'A job moved along its workflow (accepted, started, completed, canceled...), or a reminder', defaults: { in_app: true, email: true, push: true, sms: false } },
  payment: { doc: 'A job\'s payment started, succeeded or failed', defaults: { in_app: true, email: true, push: true, sms: false } },
  job_alert: { doc: 'An open request near you in your categories', defaults: { in_app: true, email: false, push: true, sms: false } },
  review: { doc: 'A review of you', defaults: { in_app: true, email: true, push: true, sms: false } },
  sign_in: { doc: 'A sign-in to your account from a new device', defaults: { in_app: true, email: true, push: true, sms: false } },
} as const satisfies Record<string, { doc: string; defaults: ChannelChoice }>
export type EventType = keyof typeof EVENT_TYPES
export const EVENT_TYPE_NAMES = Object.keys(EVENT_TYPES) as EventType[]

export interface NotificationSettingsRow {
  time_zone: string
  quiet_start: string | null
  quiet_end: string | null
  events: Partial<Record<EventType, Partial<ChannelChoice>>>
}

export const DEFAULT_SETTINGS: NotificationSettingsRow = { time_zone: 'UTC', quiet_start: null, quiet_end: null, events: {} }

/** The channels a user chose for an event: the defaults, with what the user changed. */
export function choiceFor(settings: NotificationSettingsRow, event: EventType): ChannelChoice {
  return { ...EVENT_TYPES[event].defaults, ...(settings.events[event] ?? {}) }
}

/** Whether a name is an IANA time zone this runtime knows. */
export function isTimeZone(name: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: name })
    return true
  } catch {
    return false
  }
}

const minutesOf = (hhmm: string) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5))

/** Minutes since midnight at `at` in the time zone. */
function localMinutes(at: Date, timeZone: string): number {
  const parts = new Intl.DateTimeFormat('en-GB', { timeZone, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).formatToParts(at)
  const get = (type: string) => Number(parts.find((p) => p.type === type)?.value ?? 0)
  return get('hour') * 60 + get('minute')
}

/**
 * When quiet hours that hold at `now` end (in the user's time zone); null when they don't hold.
 * The window may cross midnight (22:00 to 07:00). A clock change inside the window shifts its end
 * by that hour.
 */
export function quietUntil(settings: Pick<NotificationSettingsRow, 'time_zone' | 'quiet_start' | 'quiet_end'>, now: Date): Date | null {
  if (!settings.quiet_start || !settings.quiet_end) return null
  const start = minutesOf(settings.quiet_start)
  const end = minutesOf(settings.quiet_end)
  if (start === end) return null
  const local = localMinutes(now, settings.time_zone)
  const inside = start < end ? local >= start && local < end : local >= start || local < end
  if (!inside) return null
  const minutesLeft = (end - local + 1440) % 1440
  // To the start of the ending minute: seconds into the current minute are taken off.
  const ms = minutesLeft * 60_000 - (now.getTime() % 60_000)
  return new Date(now.getTime() + ms)
}
