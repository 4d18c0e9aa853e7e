import type { SpanContext } from '@opentelemetry/api'
import type {
  CircuitState,
  EventArguments,
  EventHub,
  InvalidationScope,
  MissReason,
  Tier,
  RegionEventMap,
  RegionEventName,
} from './events.js'
import { regionEvents } from './events.js'
import type { HotKeyTracker } from './hot-keys.js'
import type { RegionObservers } from './metrics.js'
import type { CounterName, Counts } from './counters.js'
import type { RegionStats, StampedeLog } from './stats.js'

/** pino-compatible: `logger.debug({ region, key }, 'message')`. */
export interface Logger {
  debug(obj: Record<string, unknown>, msg: string): void
}

/**
 * The one place a region reports what happened. Each method is a step of the dogpile lock; it updates the plain
 * counters, the hot-key tracker and the histograms, writes dogpile.cache's debug lines, and builds an event
 * payload only when someone listens to that event (on the region or its registry).
 */
export class Instrumentation {
  observers: RegionObservers | undefined
  private readonly counts: Counts

  constructor(
    private readonly region: string,
    readonly stats: RegionStats,
    private readonly hub: EventHub,
    private readonly registryHub: EventHub | undefined,
    readonly hotKeys: HotKeyTracker | undefined,
    private readonly stampedes: StampedeLog | undefined,
    private readonly logger: Logger | undefined,
  ) {
    this.counts = stats.counts
  }

  private listening(name: RegionEventName): boolean {
    return this.hub.listening[name] || (this.registryHub !== undefined && this.registryHub.listening[name])
  }

  private emit<Name extends RegionEventName>(name: Name, payload: RegionEventMap[Name]): void {
    this.hub.emit(name, payload)
    this.registryHub?.emit(name, payload)
  }

  /**
   * The generic step: counts `counter` (when given) and emits `name` with the payload its factory in events.ts
   * builds from `args`, only when someone listens. A new event or counter needs no method here.
   */
  note<Name extends RegionEventName>(
    counter: CounterName | undefined,
    name: Name,
    ...args: EventArguments<Name>
  ): void {
    if (counter !== undefined) this.counts[counter]++
    if (this.listening(name)) {
      const factory = regionEvents[name] as unknown as (
        region: string,
        ...rest: EventArguments<Name>
      ) => RegionEventMap[Name]
      this.emit(name, factory(this.region, ...args))
    }
  }

  /**
   * A fresh value served, from this process's memory (`l1`) or from the backend (`l2`). The hit path: two counters,
   * the hot-key tracker's countdown, and whether anyone listens, read as named properties (a lookup by a variable
   * event name, as `listening(name)` does, cost a third of a memory hit when it was there).
   */
  hit(key: string, tier: Tier): void {
    const counts = this.counts
    counts.hits++
    if (tier === 'l1') counts.l1Hits++
    this.hotKeys?.hit(key)
    if (this.hub.listening.hit || (this.registryHub !== undefined && this.registryHub.listening.hit))
      this.emit('hit', regionEvents.hit(this.region, key, tier))
  }

  /** `count` copies left a tiered region's L1 for `cause` (no event: they are counted, per cause). */
  l1Evicted(cause: 'bus' | 'size' | 'age' | 'disconnect', count: number): void {
    const counter =
      cause === 'bus'
        ? 'l1EvictionsBus'
        : cause === 'size'
          ? 'l1EvictionsSize'
          : cause === 'age'
            ? 'l1EvictionsAge'
            : 'l1EvictionsDisconnect'
    this.counts[counter] += count
  }

  /** A read that found no usable value. `counted` is false when the caller will be counted as stale instead. */
  miss(key: string, reason: MissReason): void {
    this.counts.misses++
    this.hotKeys?.record(key, 'miss')
    if (this.logger) {
      this.logger.debug(
        { region: this.region, key, reason },
        reason === 'invalidated' ? `Hard invalidation detected for key: ${key}` : `No value present for key: ${key}`,
      )
    }
    if (this.listening('miss')) this.emit('miss', regionEvents.miss(this.region, key, reason))
  }

  /** A stale value served: by a caller that lost the race for the lock, or handed to an async runner. */
  stale(key: string, ageSeconds: number): void {
    this.counts.stale++
    this.hotKeys?.hit(key)
    if (this.listening('stale')) this.emit('stale', regionEvents.stale(this.region, key, ageSeconds))
  }

  coalesced(key: string, mode: 'waited' | 'stale'): void {
    if (mode === 'waited') this.counts.coalescedWaited++
    else this.counts.coalescedStale++
    if (this.listening('coalesced')) this.emit('coalesced', regionEvents.coalesced(this.region, key, mode))
  }

  /** `trace`: the span the wait belongs to, the histogram's exemplar when sampled. */
  lockWait(key: string, seconds: number, distributed: boolean, trace?: SpanContext): void {
    this.counts.lockWaits++
    this.observers?.lockWait(seconds, trace)
    if (this.logger)
      this.logger.debug(
        { region: this.region, key, seconds, distributed },
        `Waited ${seconds.toFixed(3)} seconds for the creation lock of key: ${key}`,
      )
    if (this.listening('lockWait')) this.emit('lockWait', regionEvents.lockWait(this.region, key, seconds, distributed))
  }

  /**
   * A regeneration of `keys` ended after `seconds`: `failed` with `error` (which may be any value a creator threw,
   * `undefined` included), with `coalesced` callers that did not run the creator; `trace` is its span.
   */
  regenerate(
    keys: string[],
    seconds: number,
    failed: boolean,
    error: unknown,
    coalesced: number,
    finishedAt: number,
    trace?: SpanContext,
  ): void {
    const ok = !failed
    this.stats.recordRegeneration(seconds, ok)
    this.observers?.regeneration(seconds, trace)
    if (this.hotKeys) for (const key of keys) this.hotKeys.recordRegeneration(key)
    if (ok && coalesced > 0 && this.stampedes) {
      for (const key of keys)
        this.stampedes.add({ region: this.region, key, at: finishedAt, coalesced, duration: seconds })
    }
    if (this.logger) {
      this.logger.debug(
        { region: this.region, keys, seconds, outcome: ok ? 'success' : 'error' },
        ok
          ? `Cache value generated in ${seconds.toFixed(3)} seconds for key(s): ${keys.join(', ')}`
          : `Cache value creation failed after ${seconds.toFixed(3)} seconds for key(s): ${keys.join(', ')}`,
      )
    }
    if (this.listening('regenerate')) {
      this.emit('regenerate', regionEvents.regenerate(this.region, keys, seconds, ok ? 'success' : 'error', error))
    }
  }

  invalidate(hard: boolean, scope: 'region' | 'key', at: number, key?: string): void {
    if (scope === 'key') this.counts.keyInvalidations++
    else if (hard) this.counts.hardRegionInvalidations++
    else this.counts.softRegionInvalidations++
    this.recordInvalidation(hard, scope, at, key)
  }

  invalidateTag(hard: boolean, tag: string, at: number): void {
    if (hard) this.counts.hardTagInvalidations++
    else this.counts.softTagInvalidations++
    this.recordInvalidation(hard, 'tag', at, tag)
  }

  /** A dependency's keys were deleted (always hard). */
  invalidateDependency(name: string, keys: number, at: number): void {
    this.counts.dependencyInvalidations++
    this.recordInvalidation(true, 'dependency', at, name, keys)
  }

  private recordInvalidation(hard: boolean, scope: InvalidationScope, at: number, key?: string, keys?: number): void {
    this.stats.lastInvalidation = { at, hard, scope }
    if (this.logger) {
      const what = scope === 'region' ? 'the region' : `${scope}: ${key}${keys === undefined ? '' : ` (${keys} keys)`}`
      this.logger.debug({ region: this.region, hard, scope, key }, `${hard ? 'Hard' : 'Soft'} invalidation of ${what}`)
    }
    if (this.listening('invalidate')) this.emit('invalidate', regionEvents.invalidate(this.region, hard, scope, key))
  }

  /** The circuit breaker around `backend` changed state. */
  circuit(backend: string, state: CircuitState): void {
    if (state === 'open') this.counts.circuitOpens++
    this.stats.circuit = { backend, state }
    if (this.logger)
      this.logger.debug({ region: this.region, backend, state }, `Circuit breaker of backend ${backend}: ${state}`)
    if (this.listening('circuit')) this.emit('circuit', regionEvents.circuit(this.region, backend, state))
  }

  backendError(operation: string, error: unknown): void {
    this.stats.recordBackendError(operation)
    if (this.logger)
      this.logger.debug(
        { region: this.region, operation, err: error },
        `Backend ${operation} failed: ${(error as Error)?.message ?? error}`,
      )
    if (this.listening('backendError'))
      this.emit('backendError', regionEvents.backendError(this.region, operation, error))
  }
}
