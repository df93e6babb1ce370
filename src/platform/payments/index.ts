import { randomUUID } from 'node:crypto'

// Payment providers: what takes the client's money and pays the worker. `local` (the embedded
// default) settles at once in our own ledger; others (Stripe) confirm later, by webhook.

export interface PaymentRequest {
  /** One payment per job: providers use it as their idempotency key, so a retry never charges twice. */
  jobId: string
  amount: number
  currency: string
  clientId: string
  workerId: string
}

export type PaymentOutcome =
  /** Settled: the job may be marked PAID now. */
  | { status: 'confirmed'; provider: string; reference: string }
  /** Under way: the provider tells us later (a webhook); the job stays PENDING_PAYMENT until then. */
  | { status: 'pending'; provider: string; reference: string }

export interface PaymentProvider {
  readonly name: string
  requestPayment(request: PaymentRequest): Promise<PaymentOutcome>
}

/** Settles every payment at once, in the ledger alone: for development, tests and demos. */
export function createLocalPaymentProvider(): PaymentProvider {
  return {
    name: 'local',
    async requestPayment(request) {
      return { status: 'confirmed', provider: 'local', reference: `local_${request.jobId}_${randomUUID()}` }
    },
  }
}

export function createPaymentProvider(kind: 'local'): PaymentProvider {
  switch (kind) {
    case 'local':
      return createLocalPaymentProvider()
  }
}
