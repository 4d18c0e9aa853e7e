import { randomUUID } from 'node:crypto'
import { Registry } from 'prom-client'
import { describeValue } from './describe-value.js'
import { ValidationError } from './errors.js'
import { rejectUnknown } from './policy.js'
import type { RegionOptions } from './region-options.js'
import { CacheRegion } from './region.js'
import { EventHub, type RegionEventListener, type RegionEventName } from './telemetry/events.js'
import { StampedeLog, type StampedeRecord } from './telemetry/stats.js'

/**
 * Knows every region by name. Re-emits all of its regions' events, owns the prom-client `Registry` their
 * metrics are registered on (`metrics`), and keeps the log of recent stampedes. The exporter reads all of this.
 */
export class RegionRegistry {
  /** Corral's metrics for this registry's regions. Never the prom-client global registry. */
  readonly metrics: Registry
  readonly stampedes = new StampedeLog(200)
  /** @internal the regions' events are re-emitted here */
  readonly hub: EventHub
  private readonly byName = new Map<string, CacheRegion>()
  private listenerErrorHandler: (error: unknown, region: string, event: RegionEventName) => void =
    defaultListenerErrorHandler

  constructor(options: { metrics?: Registry } = {}) {
    this.metrics = options.metrics ?? new Registry()
    this.hub = new EventHub((error, event) => this.reportListenerError(error, '*', event))
  }

  /** Creates a region in this registry (see `createRegion`). */
  createRegion(options: Omit<RegionOptions, 'registry'> = {}): CacheRegion {
    if (options === null || typeof options !== 'object')
      throw new ValidationError('createRegion(): options must be an object')
    rejectUnknown(options, REGION_OPTIONS, 'createRegion()')
    if (options.telemetry !== undefined && options.telemetry !== false) {
      if (options.telemetry === null || typeof options.telemetry !== 'object')
        throw new ValidationError('createRegion(): telemetry must be an object of options or false')
      rejectUnknown(
        options.telemetry,
        ['metricsRegistry', 'recordKeys', 'hotKeys', 'backendSpans'],
        'createRegion(): telemetry',
      )
      const { backendSpans } = options.telemetry
      if (backendSpans !== undefined && typeof backendSpans !== 'boolean')
        throw new ValidationError(
          `createRegion(): telemetry.backendSpans must be a boolean; got ${describeValue(backendSpans)}`,
        )
    }
    const name = options.name ?? `region-${randomUUID().slice(0, 8)}`
    if (typeof name !== 'string' || name.trim() === '')
      throw new ValidationError(`createRegion(): name must be a non-empty string`)
    if (this.byName.has(name)) {
      throw new ValidationError(
        `a region named "${name}" already exists in this registry: names identify regions in metrics and the admin API`,
      )
    }
    const region = new CacheRegion(options, this, name)
    this.byName.set(name, region)
    return region
  }

  get(name: string): CacheRegion | undefined {
    return this.byName.get(name)
  }

  has(name: string): boolean {
    return this.byName.has(name)
  }

  list(): CacheRegion[] {
    return [...this.byName.values()]
  }

  [Symbol.iterator](): Iterator<CacheRegion> {
    return this.byName.values()
  }

  get size(): number {
    return this.byName.size
  }

  /** Recent regenerations that had coalesced callers, newest first. */
  recentStampedes(limit = 50): StampedeRecord[] {
    return this.stampedes.recent(limit)
  }

  /** Subscribes to an event of every region of this registry. */
  on<Name extends RegionEventName>(name: Name, listener: RegionEventListener<Name>): this {
    this.hub.on(name, listener)
    return this
  }

  off<Name extends RegionEventName>(name: Name, listener: RegionEventListener<Name>): this {
    this.hub.off(name, listener)
    return this
  }

  /** Where a throwing event listener is reported (default: a process warning). It never reaches the cache caller. */
  onListenerError(handler: (error: unknown, region: string, event: RegionEventName) => void): void {
    this.listenerErrorHandler = handler
  }

  /** @internal */
  reportListenerError(error: unknown, region: string, event: RegionEventName): void {
    this.listenerErrorHandler(error, region, event)
  }

  /** @internal called by `region.close()` */
  remove(region: CacheRegion): void {
    if (this.byName.get(region.name) === region) this.byName.delete(region.name)
  }

  /** Closes every region. */
  async close(): Promise<void> {
    await Promise.all(this.list().map((region) => region.close()))
  }
}

function defaultListenerErrorHandler(error: unknown, region: string, event: RegionEventName): void {
  process.emitWarning(
    `a listener of the "${event}" event of region "${region}" threw: ${(error as Error)?.stack ?? error}`,
    {
      code: 'CORRAL_LISTENER_ERROR',
    },
  )
}

const REGION_OPTIONS = [
  'name',
  'keyGenerator',
  'multiKeyGenerator',
  'keyMangler',
  'asyncCreationRunner',
  'serializer',
  'registry',
  'telemetry',
  'logger',
  'clock',
]

/** The process-wide registry. */
export const regions = new RegionRegistry()

/** Creates an unconfigured region (in `options.registry`, default `regions`); configure it before use. */
export function createRegion(options: RegionOptions = {}): CacheRegion {
  const { registry = regions, ...rest } = options ?? {}
  if (!(registry instanceof RegionRegistry))
    throw new ValidationError('createRegion(): registry must be a RegionRegistry')
  return registry.createRegion(rest)
}
