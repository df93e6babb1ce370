import type { EventBus } from './types.js'

/** Wraps an event bus so that closing the store ends every subscription still open. */
export function withSubscriptionsClosedOnClose(bus: EventBus): { events: EventBus; closeAll(): Promise<void> } {
  const open = new Set<() => Promise<void>>()
  return {
    events: {
      publish: bus.publish,
      async subscribe(handler) {
        const unsubscribe = await bus.subscribe(handler)
        const once = async () => {
          if (open.delete(once)) await unsubscribe()
        }
        open.add(once)
        return once
      },
    },
    async closeAll() {
      await Promise.all([...open].map((unsubscribe) => unsubscribe()))
    },
  }
}
