/**
 * Where the snapshots live in Redis. For a fleet named `<name>`:
 *
 * - `corral:fleet:{<name>}:instance:<id>`: one process's latest snapshot (JSON), set with an expiry of three
 *   intervals at every publish: a process that stops publishing (killed, hung, cut off) disappears by itself;
 * - `corral:fleet:{<name>}:instances`: a sorted set of the instance ids, scored by their last publish (epoch ms),
 *   to find the snapshots without `SCAN`. Readers drop ids whose snapshot has expired; publishers drop ids silent
 *   for an hour, so the set stays bounded even if nobody reads.
 *
 * - `corral:fleet:{<name>}:waits:<id>`: the same process's recent waiting episodes only (callers that waited for a
 *   creator it did not run), small, with the same expiry: what the other processes read to learn that a regeneration
 *   of theirs had callers waiting here (see `EpisodeLog.claim`).
 *
 * The `{<name>}` hash tag keeps a fleet's keys in one Redis Cluster slot, so one `MGET` reads them all.
 */
import { createRequire } from 'node:module'
import { ValidationError } from '@corral/core'
import type { Redis, Cluster } from 'ioredis'
import { isPublishedEpisode, parseSnapshot, type InstanceSnapshot, type PublishedEpisode } from './snapshot.js'

/** The ioredis client the fleet talks through: a `Redis` or a `Cluster`. */
export type FleetRedisClient = Redis | Cluster

/** Ids silent for longer than this are removed from the index by any publisher. */
const FORGET_AFTER_MS = 60 * 60_000
/** The most instances one read considers. */
export const MAX_INSTANCES = 1000

/** ioredis, loaded on first use: an optional peer dependency, as in `@corral/core`. */
export function loadIoredis(): typeof import('ioredis') {
  const require = createRequire(import.meta.url)
  try {
    return require('ioredis') as typeof import('ioredis')
  } catch (error) {
    const code = (error as NodeJS.ErrnoException)?.code
    if (code === 'MODULE_NOT_FOUND' || code === 'ERR_MODULE_NOT_FOUND') {
      throw new ValidationError(
        'fleet telemetry needs the "ioredis" package, which is not installed: npm install ioredis',
        {
          cause: error,
        },
      )
    }
    throw error
  }
}

export function isRedisClient(value: unknown): value is FleetRedisClient {
  const client = value as Partial<Record<'pipeline' | 'mget' | 'zrevrange', unknown>> | null
  return (
    client !== null &&
    typeof client === 'object' &&
    typeof client.pipeline === 'function' &&
    typeof client.mget === 'function' &&
    typeof client.zrevrange === 'function'
  )
}

export class FleetStore {
  private readonly prefix: string

  constructor(
    readonly client: FleetRedisClient,
    readonly name: string,
  ) {
    this.prefix = `corral:fleet:{${name}}:`
  }

  get indexKey(): string {
    return `${this.prefix}instances`
  }

  snapshotKey(id: string): string {
    return `${this.prefix}instance:${id}`
  }

  waitsKey(id: string): string {
    return `${this.prefix}waits:${id}`
  }

  /** Writes `snapshot` and its waiting episodes `waits`, to expire after `ttlMs`, and indexes them. */
  async publish(snapshot: InstanceSnapshot, waits: PublishedEpisode[], ttlMs: number): Promise<void> {
    const px = Math.max(1, Math.round(ttlMs))
    const results = await this.client
      .pipeline()
      .set(this.snapshotKey(snapshot.id), JSON.stringify(snapshot), 'PX', px)
      .set(this.waitsKey(snapshot.id), JSON.stringify(waits), 'PX', px)
      .zadd(this.indexKey, snapshot.lastSeen, snapshot.id)
      .zremrangebyscore(this.indexKey, '-inf', snapshot.lastSeen - FORGET_AFTER_MS)
      .exec()
    const failed = results?.find(([error]) => error !== null)
    if (failed) throw failed[0]
  }

  /** Removes this instance at once (a clean shutdown). */
  async remove(id: string): Promise<void> {
    await this.client.pipeline().del(this.snapshotKey(id)).del(this.waitsKey(id)).zrem(this.indexKey, id).exec()
  }

  /** Every other live instance's waiting episodes (those that are not well-formed dropped). */
  async readWaits(except: string): Promise<PublishedEpisode[]> {
    const ids = (await this.client.zrevrange(this.indexKey, 0, MAX_INSTANCES - 1)).filter((id) => id !== except)
    if (ids.length === 0) return []
    const texts = await this.client.mget(ids.map((id) => this.waitsKey(id)))
    return texts.flatMap((text) => {
      if (text === null) return []
      try {
        const waits: unknown = JSON.parse(text)
        return Array.isArray(waits) ? waits.filter(isPublishedEpisode) : []
      } catch {
        return []
      }
    })
  }

  /** The live instances' snapshots, most recently seen first. Ids whose snapshot expired are dropped from the index. */
  async read(): Promise<InstanceSnapshot[]> {
    const ids = await this.client.zrevrange(this.indexKey, 0, MAX_INSTANCES - 1)
    if (ids.length === 0) return []
    const texts = await this.client.mget(ids.map((id) => this.snapshotKey(id)))
    const live: InstanceSnapshot[] = []
    const gone: string[] = []
    texts.forEach((text, i) => {
      if (text === null) gone.push(ids[i]!)
      const snapshot = parseSnapshot(text)
      if (snapshot) live.push(snapshot)
    })
    if (gone.length > 0) await this.client.zrem(this.indexKey, ...gone).catch(() => undefined)
    return live
  }
}
