// The words of the payments' system messages.

const money = (amount: number, currency: string) => {
  try {
    return new Intl.NumberFormat('en', { style: 'currency', currency }).format(amount / 10 ** (new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions().maximumFractionDigits ?? 2))
  } catch {
    return `${amount} ${currency} (minor units)`
  }
}

export { money }

export const paymentTexts = {
  released: (title: string, amount: string) => `The ${amount} held for "${title}" was released to your card.`,
  refunded: (title: string, amount: string, reason: string, toClient: boolean) =>
    toClient ? `${amount} of your payment for "${title}" was refunded to your card: ${reason}` : `${amount} of the payment for "${title}" was refunded to the client: ${reason}`,
  disputed: (title: string, amount: string, toClient: boolean) =>
    toClient
      ? `Your bank disputed the payment of ${amount} for "${title}". We hold it until the dispute is settled.`
      : `The client's bank disputed the payment of ${amount} for "${title}": the payout is held until the dispute is settled.`,
  disputedToAdmin: (title: string, amount: string, jobId: string) => `Dispute: the payment of ${amount} for "${title}" (job ${jobId}) was disputed; its payout is held.`,
  disputeWon: (title: string, amount: string, toClient: boolean) =>
    toClient
      ? `The dispute of your payment of ${amount} for "${title}" was decided for the worker: the payment stands.`
      : `The client's dispute of the payment of ${amount} for "${title}" was decided in your favour: your payout is no longer held.`,
  disputeLost: (title: string, amount: string, toClient: boolean) =>
    toClient
      ? `The dispute of your payment of ${amount} for "${title}" was decided in your favour: the money stays refunded to your card.`
      : `The client's dispute of the payment of ${amount} for "${title}" was decided for the client: the ${amount} were refunded to them.`,
  disputeClosedToAdmin: (title: string, amount: string, jobId: string, outcome: string) => `Dispute ${outcome}: the payment of ${amount} for "${title}" (job ${jobId}).`,
}
