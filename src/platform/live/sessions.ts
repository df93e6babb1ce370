// What both session stores share.

/**
 * A session's idle expiry is written again only when it moves by at least this (min(60 s, 0.1%
 * of the idle TTL)): a burst of requests on one token costs reads, not a write each.
 */
export const renewalStepMs = (idleTtlSeconds: number) => Math.min(60_000, idleTtlSeconds)
