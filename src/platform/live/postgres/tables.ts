declare module '../../db/types.js' {
  interface Database {
    live_counters: { key: string; count: number; expires_at: Date }
  }
}
export {}
