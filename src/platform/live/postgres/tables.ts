declare module '../../db/types.js' {
  interface Database {
    live_sessions: {
      token_hash: string
      id: string
      user_id: string
      user_agent: string | null
      created_at: Date
      last_used_at: Date
      expires_at: Date
      max_expires_at: Date
    }
    live_counters: { key: string; count: number; expires_at: Date }
  }
}
export {}
