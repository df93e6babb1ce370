// SMS behind a provider interface. The default provider only logs that a message went to a number
// (never its text, which may hold a confirmation code): a deployment plugs in its SMS gateway here.

export interface SmsMessage {
  to: string
  text: string
}

export interface SmsProvider {
  name: string
  /** Sends one SMS; the key makes a retry of the same message send it once, where the gateway honours it. */
  send(message: SmsMessage, idempotencyKey: string): Promise<void>
}

export function logOnlySmsProvider(log: { info(obj: object, msg: string): void }): SmsProvider {
  return {
    name: 'log',
    async send(message, idempotencyKey) {
      // The number's last digits only, and no text: a code in the log would be a code anyone with the log could use.
      log.info({ sms_to: `…${message.to.slice(-3)}`, sms_length: message.text.length, idempotency_key: idempotencyKey }, 'an SMS would be sent (log-only SMS provider)')
    },
  }
}
