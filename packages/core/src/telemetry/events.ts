/**
 * Region events. Each payload is built by one small factory, and `RegionEventMap` is derived from those factories,
 * so the payload types and the payloads actually emitted cannot drift apart.
 */

export type MissReason = 'absent' | 'expired' | 'invalidated'
export type CoalescedMode = 'waited' | 'stale'
export type InvalidationScope = 'region' | 'key' | 'tag' | 'dependency'
export type TimeoutKind = 'soft' | 'hard'
export type CircuitState = 'closed' | 'half-open' | 'open'
/**
 * Which tier answered a hit: `l1` from this process's memory (the `memory` backend, a region's L1), `l2` from the
 * backend (a round trip to Redis or memcached).
 */
export type Tier = 'l1' | 'l2'

export const regionEvents = {
  hit: (region: string, key: string, tier: Tier) => ({ region, key, tier }),
  miss: (region: string, key: string, reason: MissReason) => ({ region, key, reason }),
  /** a stale value served while another caller regenerates; `age` in seconds since it was created */
  stale: (region: string, key: string, age: number) => ({ region, key, age }),
  /** the creator ran; `duration` in seconds */
  regenerate: (region: string, keys: string[], duration: number, outcome: 'success' | 'error', error?: unknown) =>
    outcome === 'error' ? { region, keys, duration, outcome, error } : { region, keys, duration, outcome },
  /** a caller waited for another caller's creation lock; `distributed` when the lock was the backend's */
  lockWait: (region: string, key: string, duration: number, distributed: boolean) => ({
    region,
    key,
    duration,
    distributed,
  }),
  /** a caller that needed a new value and did not run the creator: one stampede prevented */
  coalesced: (region: string, key: string, mode: CoalescedMode) => ({ region, key, mode }),
  /** `key` names the key (scope `key`), the tag (scope `tag`) or the dependency (scope `dependency`) */
  invalidate: (region: string, hard: boolean, scope: InvalidationScope, key?: string) =>
    key === undefined ? { region, hard, scope } : { region, hard, scope, key },
  backendError: (region: string, operation: string, error: unknown) => ({ region, operation, error }),
  /**
   * the creator failed or timed out and a value no older than `failSafe.maxStaleAge` was served instead of the
   * error; `age` in seconds since that value was created
   */
  failSafe: (region: string, key: string, age: number, error: unknown) => ({ region, key, age, error }),
  /** a creator ran past its soft timeout (the stale value was served) or its hard timeout (it was abandoned) */
  timeout: (region: string, key: string, kind: TimeoutKind) => ({ region, key, kind }),
  /**
   * the circuit breaker around the region's backend changed state: `open` (calls skip the backend for a cool-down),
   * `half-open` (one call probes it), `closed` (calls reach it again)
   */
  circuit: (region: string, backend: string, state: CircuitState) => ({ region, backend, state }),
} as const

type Factories = typeof regionEvents
export type RegionEventName = keyof Factories
export type RegionEventMap = { [Name in RegionEventName]: ReturnType<Factories[Name]> }
/** The arguments of an event's factory after `region`. */
export type EventArguments<Name extends RegionEventName> = Factories[Name] extends (
  region: string,
  ...rest: infer Rest
) => unknown
  ? Rest
  : never
export type RegionEventListener<Name extends RegionEventName> = (payload: RegionEventMap[Name]) => void

export const REGION_EVENT_NAMES = Object.keys(regionEvents) as RegionEventName[]

/**
 * A minimal typed emitter. Unlike node's EventEmitter, a listener that throws is isolated (reported through
 * `onListenerError`, never to the cache caller), and `has(name)` is a field read, so the hit path can skip
 * building payloads nobody listens to.
 */
export class EventHub {
  private readonly listeners = new Map<RegionEventName, Array<(payload: never) => void>>()
  /** true while at least one listener exists for the event; read on hot paths */
  readonly listening: Record<RegionEventName, boolean> = Object.fromEntries(
    REGION_EVENT_NAMES.map((name) => [name, false]),
  ) as Record<RegionEventName, boolean>

  constructor(private readonly onListenerError: (error: unknown, event: RegionEventName) => void) {}

  on<Name extends RegionEventName>(name: Name, listener: RegionEventListener<Name>): void {
    if (!REGION_EVENT_NAMES.includes(name))
      throw new TypeError(`unknown region event "${String(name)}"; events are ${REGION_EVENT_NAMES.join(', ')}`)
    const list = this.listeners.get(name) ?? []
    this.listeners.set(name, [...list, listener as (payload: never) => void])
    this.listening[name] = true
  }

  off<Name extends RegionEventName>(name: Name, listener: RegionEventListener<Name>): void {
    const list = this.listeners.get(name)
    if (!list) return
    const index = list.indexOf(listener as (payload: never) => void)
    if (index < 0) return
    const next = list.filter((_, i) => i !== index)
    this.listeners.set(name, next)
    this.listening[name] = next.length > 0
  }

  emit<Name extends RegionEventName>(name: Name, payload: RegionEventMap[Name]): void {
    const list = this.listeners.get(name)
    if (!list) return
    // The array is replaced, never mutated, on on/off: iterating it while listeners change is safe.
    for (const listener of list) {
      try {
        ;(listener as RegionEventListener<Name>)(payload)
      } catch (error) {
        try {
          this.onListenerError(error, name)
        } catch {
          // a failing error reporter must not reach the caller either
        }
      }
    }
  }
}
