// Live state: what changes often and can be rebuilt (counters, events, locations). Two
// implementations share this interface and one contract suite: Redis, and PostgreSQL (the
// embedded default, and the choice for a deployment without Redis).

export interface CounterHit {
  count: number
  /** Milliseconds until the window ends and the count starts again. */
  resetMs: number
}

/** Fixed-window counters: rate limits and failed sign-ins. */
export interface CounterStore {
  /** Adds `by` hits (1 by default) and answers the count with them. */
  hit(key: string, windowMs: number, by?: number): Promise<CounterHit>
  /**
   * Adds hits to many counters (each key once) in one round trip, answering in the same order;
   * a store that has no such batch leaves it out, and they go one by one.
   */
  hitMany?(hits: readonly { key: string; windowMs: number; by: number }[]): Promise<CounterHit[]>
  /** The current count without adding to it. */
  peek(key: string): Promise<CounterHit>
  reset(key: string): Promise<void>
}

/** An event for some users, delivered to every process, which hands it to their sockets. */
export interface LiveEvent {
  /** The users to deliver the event to. */
  to: string[]
  type: string
  data: unknown
  /** The JSON of `{ type, data }`, as sockets get it, when it was made already (see wire.ts). */
  frame?: string
}

export interface EventBus {
  /** Delivers to every subscriber in every process, this one included. */
  publish(event: LiveEvent): Promise<void>
  subscribe(handler: (event: LiveEvent) => void): Promise<() => Promise<void>>
}

export type LocationRole = 'CLIENT' | 'WORKER' | 'ADMIN'

export interface GeoPoint {
  lat: number
  lon: number
}

/** A user's live location as stored: already blurred by the caller, never the raw position. */
export interface LocationRecord {
  lat: number
  lon: number
  /** The user's roles, so that searches filter by role inside the store. */
  roles: readonly LocationRole[]
  expiresAt: Date
  /** What a search shows of the user, as the caller encodes it; answered with each hit. */
  card: string
  /** The user's categories (ids), so that a search for some of them is filtered inside the store. */
  categories?: readonly string[]
  /**
   * The version of the card, roles and categories (when the account last changed, in ms): a card and roles
   * older than the stored ones never replace them (the place and expiry still do).
   */
  version: number
  /**
   * The points the user was shown at lately, as the caller chose them (public points, never a
   * raw position), kept until their own expiry however the location ends, so that a user back
   * at a place is shown where it was shown before. Left as they are when absent.
   */
  anchors?: { points: readonly GeoPoint[]; expiresAt: Date }
}

export interface NearbyQuery {
  lat: number
  lon: number
  /** Meters; a user is inside when its distance rounded to whole meters is at most this. */
  radiusM: number
  /** Hits to answer at most. */
  limit: number
  role?: LocationRole
  /** Continue after this hit, in (distance, user id) order. */
  after?: { distanceM: number; userId: string }
  /** Users to leave out. */
  exclude?: ReadonlySet<string>
  /** Only users holding at least one of these categories (an empty set: nobody). */
  categories?: ReadonlySet<string>
}

export interface NearbyHit {
  userId: string
  distanceM: number
  /** The user's card as last set; null for a location stored without one. */
  card: string | null
}

/** Live locations: each expires on its own; searches answer nearest first, never an expired one. */
export interface LocationStore {
  /** Puts the user at a place (moving it if it was elsewhere) until record.expiresAt. */
  set(userId: string, record: LocationRecord): Promise<void>
  /**
   * New roles, card and categories for a user on the map, keeping its place and expiry (its account
   * changed); nothing when the user is not on the map, so an ended location never comes back,
   * nor when the stored version is newer.
   */
  update(userId: string, change: { roles: readonly LocationRole[]; card: string; version: number; categories?: readonly string[] }): Promise<void>
  /** Takes the user off the map; its anchors stay. */
  remove(userId: string): Promise<void>
  /** The user's unexpired anchors, as last set (empty when none). */
  anchors(userId: string): Promise<GeoPoint[]>
  /** Takes the user off the map and drops its anchors (the account is deleted). */
  forget(userId: string): Promise<void>
  /** Unexpired users within the radius, ordered by (distance, user id), at most `limit`. */
  nearby(query: NearbyQuery): Promise<NearbyHit[]>
  /** Deletes expired entries now (a background sweep also does); answers how many went. */
  sweep(): Promise<number>
}

/** Values that can be taken once and expire: one-time WebSocket tickets. */
export interface TicketStore {
  /** Stores a value under a key (a hash, never a secret itself) for ttlMs. */
  put(key: string, value: string, ttlMs: number): Promise<void>
  /** Answers the value and removes it, so it is taken once; null when unknown, taken or expired. */
  take(key: string): Promise<string | null>
}

export interface LiveStore {
  kind: 'redis' | 'postgres'
  counters: CounterStore
  events: EventBus
  tickets: TicketStore
  locations: LocationStore
  /** Throws when the store does not answer. */
  ping(): Promise<void>
  close(): Promise<void>
}
