// What other features may use of blocks: its service (who is hidden from whom), the read of who
// blocked whom that a statement of theirs takes in, and the hold on a pair of users that a
// message or an offer takes before that read, in its own transaction (and for many pairs at once,
// what alerts an open request to many workers).
export { createBlocksService, type BlocksService } from './service.js'
export { blockedAmong, blockerBetween, createBlocksStore, holdPair, PAIR_LOCKS, pairLockKey, type BlocksStore } from './store.js'
