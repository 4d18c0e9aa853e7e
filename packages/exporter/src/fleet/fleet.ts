/**
 * Fleet telemetry: this process publishes a snapshot of its regions to the fleet's Redis every interval, and reads
 * every live process's snapshot to answer `/api/fleet`. Turned on by the exporter's `fleet` option.
 *
 * Publishing never touches a cache call: the snapshot is built from counters, hot-key trackers and the episode log
 * on a timer (unref'd: it never keeps the process alive). A failed publish (Redis down) is retried at the next
 * interval, reported once per outage through the logger and counted in `corral_exporter_fleet_publish_failures_total`.
 */
import { hostname } from 'node:os'
import { randomBytes } from 'node:crypto'
import { parseDuration, ValidationError, type RegionRegistry } from '@corral/core'
import { HISTOGRAM_BOUNDS, readRegionBuckets } from '../histograms.js'
import { EPISODE_GAP_MS, EpisodeLog } from './episodes.js'
import {
  boundedKey,
  EPISODES_PUBLISHED,
  HOT_KEYS_PER_REGION,
  MAX_REGIONS,
  SNAPSHOT_VERSION,
  type InstanceSnapshot,
  type PublishedRegion,
} from './snapshot.js'
import { FleetStore, isRedisClient, loadIoredis, type FleetRedisClient } from './store.js'

/** The exporter's `fleet` option. */
export interface FleetOptions {
  /** The Redis the processes share: a URL (`redis://host:6379/0`, `rediss://...`), or your ioredis `Redis` or `Cluster`. */
  redis: string | FleetRedisClient
  /** Separates fleets on one Redis. Default `'default'`. Letters, digits and `_ . : -`, at most 64. */
  name?: string
  /** How often this process publishes: seconds or a duration string. Default 5 s; at most 60 s. */
  interval?: number | string
}

export const DEFAULT_FLEET_NAME = 'default'
export const DEFAULT_FLEET_INTERVAL_MS = 5000
/** A process that has not published for this many intervals has left the fleet (its snapshot expired). */
export const INTERVALS_TO_LEAVE = 3
const FLEET_OPTIONS = ['redis', 'name', 'interval']
/** Reads closer together than this share one round trip (a dashboard and the history sampler at once). */
const READ_CACHE_MS = 200
const CLOSE_TIMEOUT_MS = 1000

/** Waits for `promise` (its failure ignored) for at most `ms`. */
async function within(ms: number, promise: Promise<unknown> | undefined): Promise<void> {
  if (promise === undefined) return
  let timer: NodeJS.Timeout | undefined
  await Promise.race([
    promise.catch(() => undefined),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms)
    }),
  ])
  clearTimeout(timer)
}

export interface FleetSettings {
  redis: string | FleetRedisClient
  name: string
  intervalMs: number
}

/** Checks the `fleet` option; every mistake is a ValidationError naming what is valid. */
export function fleetSettings(options: unknown): FleetSettings {
  if (options === null || typeof options !== 'object' || Array.isArray(options))
    throw new ValidationError('createExporter(): fleet must be an object such as { redis: "redis://127.0.0.1:6379" }')
  const unknown = Object.keys(options).filter((key) => !FLEET_OPTIONS.includes(key))
  if (unknown.length > 0)
    throw new ValidationError(
      `createExporter(): unknown fleet option ${unknown.map((k) => `"${k}"`).join(', ')}; valid: ${FLEET_OPTIONS.join(', ')}`,
    )
  const { redis, name = DEFAULT_FLEET_NAME, interval } = options as FleetOptions
  if (typeof redis === 'string') {
    if (!/^rediss?:\/\//.test(redis))
      throw new ValidationError(
        `createExporter(): fleet.redis must be a redis:// or rediss:// URL, or an ioredis client; got "${redis.slice(0, 100)}"`,
      )
  } else if (!isRedisClient(redis)) {
    throw new ValidationError('createExporter(): fleet.redis must be a redis:// URL or an ioredis Redis or Cluster')
  }
  if (typeof name !== 'string' || !/^[A-Za-z0-9_.:-]{1,64}$/.test(name))
    throw new ValidationError(
      `createExporter(): fleet.name must be 1 to 64 letters, digits or _ . : -; got ${JSON.stringify(name)}`,
    )
  let intervalMs = DEFAULT_FLEET_INTERVAL_MS
  if (interval !== undefined) {
    const seconds = parseDuration(interval, 'createExporter(): fleet.interval')
    if (!(seconds >= 0.05 && seconds <= 60))
      throw new ValidationError(`createExporter(): fleet.interval must be from 50ms to 60s; got ${String(interval)}`)
    intervalMs = seconds * 1000
  }
  return { redis, name, intervalMs }
}

export interface FleetHooks {
  /** A publish failed (first failure of an outage), or succeeded again after failures. */
  onPublishProblem(error: Error | undefined): void
  onPublishFailure(): void
}

export class Fleet {
  readonly id: string
  readonly name: string
  readonly intervalMs: number
  readonly startedAt = Date.now()
  private readonly store: FleetStore
  private readonly ownsClient: boolean
  private readonly episodes = new EpisodeLog()
  private timer: NodeJS.Timeout | undefined
  private publishing: Promise<void> | undefined
  private failing = false
  private closed = false
  private cached: { at: number; read: Promise<InstanceSnapshot[]> } | undefined

  constructor(
    private readonly registry: RegionRegistry,
    settings: FleetSettings,
    private readonly hooks: FleetHooks,
  ) {
    this.name = settings.name
    this.intervalMs = settings.intervalMs
    this.id = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`
    let client: FleetRedisClient
    if (typeof settings.redis === 'string') {
      const { Redis } = loadIoredis()
      // Bounded commands: a Redis that is down fails a publish within a few seconds instead of queueing it.
      client = new Redis(settings.redis, {
        maxRetriesPerRequest: 1,
        commandTimeout: Math.max(1000, settings.intervalMs),
        connectionName: 'corral-fleet',
      })
      // ioredis reports connection errors as 'error' events; the failed publishes say what matters.
      client.on('error', () => {})
      this.ownsClient = true
    } else {
      client = settings.redis
      this.ownsClient = false
    }
    this.store = new FleetStore(client, settings.name)
  }

  /** Starts listening and publishing (the first snapshot at once). */
  start(): void {
    this.episodes.attach(this.registry)
    void this.publish()
    this.timer = setInterval(() => void this.publish(), this.intervalMs)
    this.timer.unref()
  }

  /** Builds and publishes this process's snapshot now (one at a time: a slow Redis skips ticks). */
  publish(): Promise<void> {
    if (this.closed) return Promise.resolve()
    this.publishing ??= this.publishOnce().finally(() => (this.publishing = undefined))
    return this.publishing
  }

  private async publishOnce(): Promise<void> {
    try {
      // Regenerations of this process that nobody here waited for: did callers of other processes wait for them?
      const recent = Date.now() - INTERVALS_TO_LEAVE * this.intervalMs - EPISODE_GAP_MS
      if (this.episodes.hasUnclaimedSince(recent)) {
        for (const wait of await this.store.readWaits(this.id))
          this.episodes.claim(wait.region, wait.key, wait.startedAt, wait.endedAt)
      }
      const snapshot = await this.snapshot()
      const waits = snapshot.episodes.filter((e) => e.regeneration === null && e.endedAt >= recent)
      await this.store.publish(snapshot, waits, this.intervalMs * INTERVALS_TO_LEAVE)
      if (this.failing) {
        this.failing = false
        this.hooks.onPublishProblem(undefined)
      }
    } catch (error) {
      this.hooks.onPublishFailure()
      if (!this.failing) {
        this.failing = true
        this.hooks.onPublishProblem(error instanceof Error ? error : new Error(String(error)))
      }
    }
  }

  /** This process's snapshot as it would be published now. */
  async snapshot(): Promise<InstanceSnapshot> {
    const buckets = await readRegionBuckets(this.registry.metrics)
    const regions: PublishedRegion[] = this.registry
      .list()
      .slice(0, MAX_REGIONS)
      .map((region) => {
        const keys = region.hotKeys(HOT_KEYS_PER_REGION)
        return {
          name: region.name,
          backend: region.describe().backend,
          stats: region.statsSnapshot(),
          buckets: buckets.get(region.name) ?? {
            regeneration: new Array<number>(HISTOGRAM_BOUNDS.regeneration.length + 1).fill(0),
            lockWait: new Array<number>(HISTOGRAM_BOUNDS.lockWait.length + 1).fill(0),
          },
          hotKeys: {
            windowSeconds: region.hotKeysWindowSeconds,
            complete: keys.length < HOT_KEYS_PER_REGION,
            keys: keys.map(({ key, count, hits, misses, regenerations }) => ({
              key: boundedKey(key),
              count,
              hits,
              misses,
              regenerations,
            })),
          },
        }
      })
    return {
      v: SNAPSHOT_VERSION,
      id: this.id,
      hostname: hostname(),
      pid: process.pid,
      startedAt: this.startedAt,
      lastSeen: Date.now(),
      interval: this.intervalMs,
      bounds: { regeneration: [...HISTOGRAM_BOUNDS.regeneration], lockWait: [...HISTOGRAM_BOUNDS.lockWait] },
      regions,
      episodes: this.episodes.recent(EPISODES_PUBLISHED),
    }
  }

  /** Every live process's latest snapshot (this one's included once it has published). */
  read(): Promise<InstanceSnapshot[]> {
    const now = Date.now()
    if (this.cached && now - this.cached.at < READ_CACHE_MS) return this.cached.read
    const read = this.store.read()
    this.cached = { at: now, read }
    read.catch(() => (this.cached = undefined))
    return read
  }

  /** Stops publishing and leaves the fleet at once (its snapshot is deleted); closes a client it created. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    clearInterval(this.timer)
    this.episodes.detach()
    // bounded: a Redis that is down (or a client of yours that queues commands while offline) cannot hold close()
    await within(CLOSE_TIMEOUT_MS, this.publishing)
    await within(CLOSE_TIMEOUT_MS, this.store.remove(this.id))
    if (this.ownsClient) this.store.client.disconnect()
  }
}
