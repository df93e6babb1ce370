import { Type, type Static } from 'typebox'
import { Page, PageQuery, Timestamp, Uuid } from '../../http/schemas.js'
import { EVENT_TYPE_NAMES, EVENT_TYPES } from './preferences.js'

const HHMM = Type.String({ pattern: '^([01][0-9]|2[0-3]):[0-5][0-9]$', description: 'Local time, HH:MM (24 h)' })

const choice = (optional: boolean) => {
  const flag = (description: string) => (optional ? Type.Optional(Type.Boolean({ description })) : Type.Boolean({ description }))
  return Type.Object(
    {
      in_app: flag('A `notification` event on the user\'s open sockets (/ws); the message is in the inbox whatever this says'),
      email: flag('A mail to the account\'s confirmed address'),
      push: flag('A Web Push to each of the user\'s push subscriptions'),
      sms: flag('An SMS to the user\'s confirmed phone number'),
    },
    { additionalProperties: false },
  )
}

const events = (optional: boolean) =>
  Type.Object(
    Object.fromEntries(EVENT_TYPE_NAMES.map((e) => [e, optional ? Type.Optional(choice(true)) : choice(false)])) as Record<string, ReturnType<typeof choice>>,
    { additionalProperties: false, description: EVENT_TYPE_NAMES.map((e) => `\`${e}\`: ${EVENT_TYPES[e].doc}`).join('; ') },
  )

const QuietHours = Type.Object({ start: HHMM, end: HHMM }, { additionalProperties: false, description: 'Channels other than in-app hold what comes in these hours (in `time_zone`) until they end, except what is urgent (a job canceled, a sign-in from a new device). The window may cross midnight' })

const defaults = Object.fromEntries(EVENT_TYPE_NAMES.map((e) => [e, EVENT_TYPES[e].defaults]))

export const NotificationSettings = Type.Object(
  {
    time_zone: Type.String({ description: 'IANA time zone of the quiet hours' }),
    quiet_hours: Type.Union([QuietHours, Type.Null()]),
    events: events(false),
  },
  { description: 'Where each kind of event reaches the user', examples: [{ time_zone: 'Europe/Berlin', quiet_hours: { start: '22:00', end: '07:00' }, events: defaults }] },
)

export const NotificationSettingsBody = Type.Object(
  {
    time_zone: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'IANA time zone, such as Europe/Berlin' })),
    quiet_hours: Type.Optional(Type.Union([QuietHours, Type.Null()], { description: 'null: none' })),
    events: Type.Optional(events(true)),
  },
  { additionalProperties: false, description: 'What to change; what is left out stays as it is', examples: [{ time_zone: 'Europe/Berlin', quiet_hours: { start: '22:00', end: '07:00' }, events: { message: { push: false }, job_update: { sms: true } } }] },
)
export type NotificationSettingsBodyInput = Static<typeof NotificationSettingsBody>

export const VapidKey = Type.Object(
  { public_key: Type.String({ description: 'The VAPID public key (base64url): `applicationServerKey` of PushManager.subscribe()' }) },
  { examples: [{ public_key: 'BEl62iUYgUivxIkv69yViEuiBIa-Ib9-SkvMeAtA3LFgDzkrxZJjSgSnfckjBJuBkr3qBUYIHBQFLXYp5Nksh8U' }] },
)

export const PushSubscriptionBody = Type.Object(
  {
    endpoint: Type.String({ format: 'uri', maxLength: 2048, description: 'The push service URL from PushSubscription.endpoint (https)' }),
    keys: Type.Object(
      {
        p256dh: Type.String({ minLength: 1, maxLength: 200, pattern: '^[A-Za-z0-9_-]+={0,2}$', description: 'The subscription\'s P-256 public key, base64url' }),
        auth: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_-]+={0,2}$', description: 'The subscription\'s auth secret, base64url' }),
      },
      { additionalProperties: false },
    ),
  },
  {
    additionalProperties: false,
    description: 'PushSubscription.toJSON() as a browser gives it (expirationTime may be left out)',
    examples: [{ endpoint: 'https://fcm.googleapis.com/fcm/send/dpH5lCsTSSM:APA91bH', keys: { p256dh: 'BIPUL12DLfytvTajnryr2PRdAgXS3HGKiLqndGcJGabyhHheJYlNGCeXl1dn18gSJ1WAkAPIxr4gK0_dQds4yiI', auth: 'FPssNDTKnInHVndSTdbKFw' } }],
  },
)
export type PushSubscriptionInput = Static<typeof PushSubscriptionBody>

export const PushSubscription = Type.Object(
  { id: Uuid, endpoint: Type.String(), user_agent: Type.Union([Type.String(), Type.Null()]), created_at: Timestamp },
  { description: 'A browser or app the user receives Web Push on', examples: [{ id: '0190a5e2-7c1f-7cc2-9a41-3f0b7f6d2a10', endpoint: 'https://fcm.googleapis.com/fcm/send/dpH5lCsTSSM:APA91bH', user_agent: 'Mozilla/5.0', created_at: '2026-05-01T09:30:00.000Z' }] },
)
export const PushSubscriptionList = Page(PushSubscription, 'The caller\'s push subscriptions, newest first')
export const PushSubscriptionListQuery = Type.Object(PageQuery, { additionalProperties: false })

export const PhoneBody = Type.Object(
  { number: Type.String({ pattern: '^\\+[1-9][0-9]{6,14}$', description: 'E.164: a plus, the country code and the number, no spaces' }) },
  { additionalProperties: false, examples: [{ number: '+4915112345678' }] },
)
export const PhoneConfirmBody = Type.Object(
  { code: Type.String({ pattern: '^[0-9]{6}$', description: 'The six digits sent by SMS' }) },
  { additionalProperties: false, examples: [{ code: '042917' }] },
)
export const Phone = Type.Object(
  { number: Type.String(), confirmed: Type.Boolean({ description: 'SMS notifications go only to a confirmed number' }) },
  { examples: [{ number: '+4915112345678', confirmed: false }] },
)

export const UnsubscribeQuery = Type.Object(
  { token: Type.String({ minLength: 1, maxLength: 200, description: 'The token of the link in a notification mail' }) },
  { additionalProperties: false },
)

export const UnsubscribeState = Type.Object(
  {
    event: Type.String({ enum: EVENT_TYPE_NAMES, description: 'The kind of event the link is about' }),
    email: Type.Boolean({ description: 'Whether this kind of event is mailed to the user now' }),
  },
  { description: 'Whether the mails of one kind of event still go to the link\'s user', examples: [{ event: 'job_update', email: false }] },
)
