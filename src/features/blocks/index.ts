// What other features may use of blocks: its service (who is hidden from whom), and the read of
// who blocked whom that a statement of theirs takes in (a send checks it in the same statement).
export { createBlocksService, type BlocksService } from './service.js'
export { blockerBetween, createBlocksStore, type BlocksStore } from './store.js'
