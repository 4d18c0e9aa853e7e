import { createRequire } from 'node:module'
import type { ConnectionOptions as TlsOptions } from 'node:tls'
import type { Cluster, ClusterOptions, Redis, RedisOptions } from 'ioredis'
import {
  NO_VALUE,
  decodeCachedValue,
  encodeCachedValue,
  jsonSerializer,
  type CachedValue,
  type NoValue,
  type Serializer,
} from '../../cached-value.js'
import { type Duration } from '../../durations.js'
import { describeValue } from '../../describe-value.js'
import { BackendError, ValidationError } from '../../errors.js'
import { FUTURE_CREATION_TOLERANCE_MS } from '../../freshness.js'
import type {
  BackendContext,
  CacheBackend,
  CacheMutex,
  FencedStore,
  L1Bus,
  LockHolder,
  RegionInvalidator,
} from '../api.js'
import { readArguments } from '../arguments.js'
import {
  ErrorThrottle,
  durationMs,
  loadOptionalPeer,
  parseHostList,
  serverTtlSeconds,
  ttlMilliseconds,
  type LockWaiter,
} from '../shared/distributed.js'
import { InvalidatorSet } from '../shared/mirrored-invalidator.js'
import { TAG_MARK_GRACE_MS } from '../shared/tag-marks.js'
import { RedisBus } from './bus.js'
import { RedisInvalidator } from './invalidator.js'
import { RedisMutex, holderOf, traceparentField } from './mutex.js'
import { ACQUIRE, INCREMENT, RELEASE, RELEASED_STORED, SET_IF_NOT_NEWER, type Script } from './scripts.js'

type IoRedis = typeof import('ioredis')
type RedisClient = Redis | Cluster

/**
 * The largest value (encoded bytes) a release message carries to the waiters of other processes. Larger values
 * are announced without it, and the waiters read them.
 */
export const RELEASE_MESSAGE_VALUE_LIMIT = 64 * 1024

/** What one attempt of the `ACQUIRE` script found. */
export interface RedisLockAttempt {
  readonly acquired: boolean
  /** held: how long the holder's lock has left */
  readonly remainingMs: number | undefined
  /** held: the holder's token (its identity, for the waiting rule of `waitForLock`) */
  readonly holder?: string
  /** held: the holder's trace context */
  readonly holderInfo?: LockHolder
  /** taken: the value under the key, read in the same step */
  readonly current?: CachedValue | NoValue
}

/** What a waiter learnt from a release message that carried the value. */
export interface HandedOver {
  readonly value: CachedValue
  readonly holder: LockHolder | undefined
}

/** A lock waiter that also remembers the value a release handed over (see `RedisBackend.lockWaiter`). */
export interface RedisLockWaiter extends LockWaiter {
  readonly released: HandedOver | undefined
}

export interface RedisBackendOptions {
  /** `redis://[[user]:password@]host:port/db` or `rediss://...` (TLS). Not with host/port, cluster or sentinels. */
  url?: string
  /** Default 127.0.0.1. */
  host?: string
  /** Default 6379. */
  port?: number
  /** Database number (not on a cluster). Default 0. */
  db?: number
  /** ACL user name (Redis 6+). */
  username?: string
  password?: string
  /** `true`, or Node.js `tls.connect` options. */
  tls?: boolean | TlsOptions
  /** An ioredis `Redis` or `Cluster` you own: used as is, never closed by Corral. */
  client?: RedisClient
  /** Redis Cluster startup nodes: `[{ host, port }, ...]` (or `'host:port,host:port'`). */
  cluster?: Array<{ host: string; port: number }> | string
  /** Sentinel addresses (with `name`, the monitored master group). */
  sentinels?: Array<{ host: string; port: number }> | string
  /** The master group name the sentinels monitor. */
  name?: string
  /** Password of the sentinels themselves, if they have one. */
  sentinelPassword?: string
  /** Prepended to every key, lock and channel this backend uses. Default ''. */
  keyPrefix?: string
  /** Take a Redis lock around regeneration, so one process regenerates a key at a time. Default true. */
  distributedLock?: boolean
  /**
   * How long a lock lives: a dead holder blocks others at most this long, and a creator runs at most this long
   * unless the region sets `hardTimeout`. A waiter gives up only when the same holder keeps the lock for 3 × this
   * (see `waitForLock`). Default 30s.
   */
  lockTimeout?: Duration
  /** Waiters are woken by a release notification; this is the fallback poll when one is missed. Default 100ms. */
  lockPollInterval?: Duration
  /** Server-side TTL of values; default 2 × the region's expiration + 60s; none without one; `-1`: none. */
  redisExpirationTime?: Duration | -1
  /** A command that gets no answer within this fails (and the region falls back to the creator). Default 1s. */
  commandTimeout?: Duration
  /**
   * How often invalidation marks are re-read, in case a notification was missed: the region's marks, and the
   * marks of the tags read since the last time. A tag's marks are trusted for twice this without a re-read. Default
   * 1s.
   */
  invalidationPollInterval?: Duration
}

/**
 * A Redis backend on ioredis: standalone, Sentinel or Cluster. Values are `encodeCachedValue` bytes under
 * `keyPrefix + key`, with a server-side TTL derived from the region's expiration. A hit is one GET.
 *
 * The distributed lock (`RedisMutex`) is `<prefix>corral:lock:<key>`, taken by a script that also reads the value
 * and released by a script that stores the value fenced and publishes it on `<prefix>corral:released:<key>` to the
 * waiters of other processes (two round trips around a creator); waiters listen on the one subscriber connection
 * of the backend and fall back to polling. Invalidation marks live in the hash `<prefix>corral:invalidation:<region>`
 * and are published on the channel of the same name; tag marks live one key per tag (see `RedisInvalidator`) and
 * are published on that channel too.
 *
 * Dependencies (`region.dependency()`) use `increment` (INCRBY and PEXPIRE in one script) for their counter and
 * `setMultiWithTtl` (SET PX, in a MULTI, or per slot on a cluster) for the keys they record.
 *
 * During an outage every call fails at once (no command waits in an offline queue once the client has been
 * connected), so the region answers from the creator and reports `backendError`; ioredis reconnects by itself.
 */
export class RedisBackend implements CacheBackend {
  readonly name = 'redis'
  /** The ioredis client (yours if you passed `client`). */
  readonly client: RedisClient
  readonly isCluster: boolean
  readonly keyPrefix: string
  readonly distributedLock: boolean
  readonly lockTimeoutMs: number
  readonly lockPollIntervalMs: number
  readonly commandTimeoutMs: number
  readonly invalidationPollIntervalMs: number

  readonly #ownsClient: boolean
  readonly #ttlArgument: unknown
  #ttlMs: number | undefined
  #serializer: Serializer = jsonSerializer
  readonly #errors = new ErrorThrottle()
  readonly #slotOf: ((key: string) => number) | undefined
  /** the client has been connected, or has failed to connect: from then on, no command waits for a connection */
  #connectSettled: boolean
  #closed = false
  #subscriber: RedisClient | undefined
  /** every channel the subscriber listens to, with its handler (messages as bytes) */
  readonly #channels = new Map<string, (message: Buffer) => void>()
  /** lock waiters by release channel: each is called with a release message, or without one to try again */
  readonly #lockWaiters = new Map<string, Set<(message?: Buffer) => void>>()
  /** cluster: short strings by hash slot, to put a lock key in its value's slot (see `#lockKey`) */
  readonly #slotTags = new Map<number, string>()
  #slotTagSearch = 0
  readonly #subscriberWatchers = new Set<(connected: boolean) => void>()
  readonly #invalidators = new InvalidatorSet<RedisInvalidator>()
  readonly #onError = (error: unknown) => {
    this.#connectSettled = true
    this.#errors.report('connection', error)
  }
  readonly #onReady = () => {
    this.#connectSettled = true
  }

  constructor(options: RedisBackendOptions = {}) {
    const args = readArguments('redis', options as Record<string, unknown>, {
      url: 'string',
      host: 'string',
      port: 'positiveInteger',
      db: 'integer',
      username: 'string',
      password: 'string',
      tls: 'any',
      client: 'any',
      cluster: 'any',
      sentinels: 'any',
      name: 'string',
      sentinelPassword: 'string',
      keyPrefix: 'string',
      distributedLock: 'boolean',
      lockTimeout: 'duration',
      lockPollInterval: 'duration',
      redisExpirationTime: 'duration',
      commandTimeout: 'duration',
      invalidationPollInterval: 'duration',
    })
    this.keyPrefix = (args.keyPrefix as string | undefined) ?? ''
    this.distributedLock = (args.distributedLock as boolean | undefined) ?? true
    this.lockTimeoutMs = durationMs('redis', 'lockTimeout', args.lockTimeout, 30)
    this.lockPollIntervalMs = durationMs('redis', 'lockPollInterval', args.lockPollInterval, 0.1)
    this.commandTimeoutMs = durationMs('redis', 'commandTimeout', args.commandTimeout, 1)
    this.invalidationPollIntervalMs = durationMs('redis', 'invalidationPollInterval', args.invalidationPollInterval, 1)
    this.#ttlArgument = args.redisExpirationTime
    // Validate now, so a bad value fails at configure time rather than at the first write.
    this.#ttlMs = ttlMilliseconds(serverTtlSeconds('redis', 'redisExpirationTime', this.#ttlArgument, undefined))

    if (args.tls !== undefined && typeof args.tls !== 'boolean' && (args.tls === null || typeof args.tls !== 'object'))
      throw new ValidationError(
        `redis backend: argument "tls" must be a boolean or tls options; got ${describeValue(args.tls)}`,
      )

    const connection = ['url', 'host', 'port', 'db', 'username', 'password', 'tls', 'cluster', 'sentinels', 'name']
    if (args.client !== undefined) {
      const extra = connection.filter((name) => args[name] !== undefined)
      if (extra.length > 0)
        throw new ValidationError(
          `redis backend: "client" is a connected client; do not combine it with ${extra.map((n) => `"${n}"`).join(', ')}`,
        )
      if (!isRedisClient(args.client))
        throw new ValidationError(
          `redis backend: argument "client" must be an ioredis Redis or Cluster; got ${describeValue(args.client)}`,
        )
    }
    if (args.cluster !== undefined) {
      const extra = ['url', 'host', 'port', 'db', 'sentinels', 'name'].filter((name) => args[name] !== undefined)
      if (extra.length > 0)
        throw new ValidationError(
          `redis backend: "cluster" lists the nodes; do not combine it with ${extra.map((n) => `"${n}"`).join(', ')}`,
        )
    }
    if ((args.sentinels === undefined) !== (args.name === undefined))
      throw new ValidationError('redis backend: "sentinels" and "name" (the master group name) go together')
    if (args.sentinels !== undefined) {
      const extra = ['url', 'host', 'port'].filter((name) => args[name] !== undefined)
      if (extra.length > 0)
        throw new ValidationError(
          `redis backend: with "sentinels" the master is found through them; do not combine it with ${extra.map((n) => `"${n}"`).join(', ')}`,
        )
    }
    if (args.url !== undefined && (args.host !== undefined || args.port !== undefined))
      throw new ValidationError('redis backend: give either "url" or "host"/"port", not both')
    const cluster = args.cluster === undefined ? undefined : parseHostList('redis', 'cluster', args.cluster)
    const sentinels = args.sentinels === undefined ? undefined : parseHostList('redis', 'sentinels', args.sentinels)

    const ioredis = loadOptionalPeer<IoRedis>('redis', 'ioredis')
    if (args.client !== undefined) {
      this.client = args.client as RedisClient
      this.#ownsClient = false
    } else {
      const common = this.#clientOptions(args)
      if (cluster) {
        const clusterOptions: ClusterOptions = {
          redisOptions: common,
          clusterRetryStrategy: retryStrategy,
          enableOfflineQueue: true,
          slotsRefreshTimeout: Math.max(1000, this.commandTimeoutMs),
        }
        this.client = new ioredis.Cluster(cluster, clusterOptions)
      } else if (sentinels) {
        this.client = new ioredis.Redis({ ...common, sentinels, name: args.name as string })
      } else if (args.url !== undefined) {
        this.client = new ioredis.Redis(args.url as string, common)
      } else {
        this.client = new ioredis.Redis({
          ...common,
          host: (args.host as string | undefined) ?? '127.0.0.1',
          port: (args.port as number | undefined) ?? 6379,
        })
      }
      this.#ownsClient = true
    }
    this.isCluster = (this.client as { isCluster?: boolean }).isCluster === true
    if (this.isCluster) {
      // ioredis cannot MGET/DEL across hash slots: group keys with the slot function ioredis itself uses.
      const ioredisRequire = createRequire(createRequire(import.meta.url).resolve('ioredis'))
      this.#slotOf = ioredisRequire('cluster-key-slot') as (key: string) => number
    }
    this.#connectSettled = this.client.status === 'ready'
    this.client.on('error', this.#onError)
    this.client.on('ready', this.#onReady)
    this.client.on('close', this.#onReady)
  }

  #clientOptions(args: Record<string, unknown>): RedisOptions {
    const options: RedisOptions = {
      // Never let commands pile up while the server is away: one retry at most, and a deadline on each.
      maxRetriesPerRequest: 1,
      commandTimeout: this.commandTimeoutMs,
      connectTimeout: Math.max(1000, this.commandTimeoutMs),
      enableOfflineQueue: true,
      retryStrategy,
    }
    if (args.db !== undefined) options.db = args.db as number
    if (args.username !== undefined) options.username = args.username as string
    if (args.password !== undefined) options.password = args.password as string
    if (args.sentinelPassword !== undefined) options.sentinelPassword = args.sentinelPassword as string
    if (args.tls === true) options.tls = {}
    else if (args.tls !== undefined && args.tls !== false) options.tls = args.tls as TlsOptions
    return options
  }

  attach(context: BackendContext): void {
    this.#serializer = context.serializer
    this.#errors.context = context
    this.#ttlMs = ttlMilliseconds(
      serverTtlSeconds(
        'redis',
        'redisExpirationTime',
        this.#ttlArgument,
        context.expirationTime,
        context.failSafeMaxStaleAge,
      ),
    )
  }

  /** The server-side TTL applied to values, in milliseconds (`undefined`: none). */
  get serverTtlMs(): number | undefined {
    return this.#ttlMs
  }

  /**
   * How long a tag mark lives after its latest time, in milliseconds: as long as a value created before it can
   * live on the server (its TTL), plus a grace for slow writes and clock skew. `undefined` when values have no
   * server TTL: they may live forever, and so must the marks that invalidate them.
   */
  get tagMarkTtlMs(): number | undefined {
    return this.#ttlMs === undefined ? undefined : this.#ttlMs + TAG_MARK_GRACE_MS
  }

  // ---------------------------------------------------------------- values

  async get(key: string): Promise<CachedValue | NoValue> {
    if (this.#invalidators.loading) await this.#invalidators.loaded()
    const data = await this.run(() => this.client.getBuffer(this.keyPrefix + key))
    return data === null ? NO_VALUE : decodeCachedValue(data, this.#serializer)
  }

  async getMulti(keys: readonly string[]): Promise<Array<CachedValue | NoValue>> {
    if (keys.length === 0) return []
    if (this.#invalidators.loading) await this.#invalidators.loaded()
    const full = keys.map((key) => this.keyPrefix + key)
    let data: Array<Buffer | null>
    if (!this.isCluster) {
      data = await this.run(() => this.client.mgetBuffer(...full))
    } else {
      // One MGET per hash slot, all sent at once: one round trip.
      data = new Array<Buffer | null>(full.length).fill(null)
      await this.run(() =>
        Promise.all(
          [...this.#bySlot(full)].map(async (indexes) => {
            const values = await this.client.mgetBuffer(...indexes.map((i) => full[i]!))
            indexes.forEach((i, j) => (data[i] = values[j] ?? null))
          }),
        ),
      )
    }
    return data.map((bytes) => (bytes === null ? NO_VALUE : decodeCachedValue(bytes, this.#serializer)))
  }

  async set(key: string, value: CachedValue): Promise<void> {
    const data = encodeCachedValue(value, this.#serializer)
    const ttl = this.#ttlMs
    const full = this.keyPrefix + key
    await this.run(() => (ttl === undefined ? this.client.set(full, data) : this.client.set(full, data, 'PX', ttl)))
  }

  /** One script: stores unless the value there was created after `since` (see `SET_IF_NOT_NEWER`). */
  async setIfNotNewer(key: string, value: CachedValue, since: number): Promise<boolean> {
    const data = encodeCachedValue(value, this.#serializer)
    const ttl = this.#ttlMs
    const result = await this.evalScript(
      SET_IF_NOT_NEWER,
      [this.keyPrefix + key],
      [data, ttl === undefined ? '' : String(ttl), String(since), String(believableUntil())],
    )
    return Number(result) === 1
  }

  async setMulti(entries: ReadonlyArray<readonly [string, CachedValue]>): Promise<void> {
    await this.#setMany(entries, this.#ttlMs)
  }

  async setMultiWithTtl(entries: ReadonlyArray<readonly [string, CachedValue]>, ttlSeconds: number): Promise<void> {
    await this.#setMany(entries, ttlMilliseconds(ttlSeconds))
  }

  async #setMany(entries: ReadonlyArray<readonly [string, CachedValue]>, ttl: number | undefined): Promise<void> {
    if (entries.length === 0) return
    // Encode everything first, so that one value that cannot be serialized stores nothing.
    const encoded = entries.map(
      ([key, value]) => [this.keyPrefix + key, encodeCachedValue(value, this.#serializer)] as const,
    )
    if (this.isCluster) {
      await this.run(() =>
        Promise.all(
          encoded.map(([key, data]) =>
            ttl === undefined ? this.client.set(key, data) : this.client.set(key, data, 'PX', ttl),
          ),
        ),
      )
      return
    }
    const results = await this.run(() => {
      const multi = (this.client as Redis).multi()
      for (const [key, data] of encoded) {
        if (ttl === undefined) multi.set(key, data)
        else multi.set(key, data, 'PX', ttl)
      }
      return multi.exec()
    })
    const failed = results?.find(([error]) => error)
    if (failed) throw failed[0]
  }

  /**
   * Adds `by` to the integer counter at `key` (INCRBY and PEXPIRE in one script, so a counter never lives without
   * its expiry); `by = 0` reads it (GET) without creating it.
   */
  async increment(key: string, by: number, ttlSeconds?: number): Promise<number> {
    if (!Number.isSafeInteger(by))
      throw new ValidationError(`redis backend: increment by a whole number; got ${describeValue(by)}`)
    const full = this.keyPrefix + key
    if (by === 0) {
      const current = await this.run(() => this.client.get(full))
      const value = current === null ? 0 : Number.parseInt(current, 10)
      return Number.isFinite(value) ? value : 0
    }
    const ttl = ttlMilliseconds(ttlSeconds)
    return Number(await this.evalScript(INCREMENT, [full], [String(by), ttl === undefined ? '' : String(ttl)]))
  }

  async delete(key: string): Promise<void> {
    await this.run(() => this.client.del(this.keyPrefix + key))
  }

  async deleteMulti(keys: readonly string[]): Promise<void> {
    if (keys.length === 0) return
    const full = keys.map((key) => this.keyPrefix + key)
    if (!this.isCluster) {
      await this.run(() => this.client.del(...full))
      return
    }
    await this.run(() =>
      Promise.all([...this.#bySlot(full)].map((indexes) => this.client.del(...indexes.map((i) => full[i]!)))),
    )
  }

  /** @internal indexes of `keys` grouped by hash slot (one group when not on a cluster) */
  slotGroups(keys: readonly string[]): number[][] {
    return this.isCluster ? [...this.#bySlot(keys)] : [keys.map((_, i) => i)]
  }

  #bySlot(keys: readonly string[]): Iterable<number[]> {
    const groups = new Map<number, number[]>()
    keys.forEach((key, i) => {
      const slot = this.#slotOf!(key)
      const group = groups.get(slot)
      if (group) group.push(i)
      else groups.set(slot, [i])
    })
    return groups.values()
  }

  // ---------------------------------------------------------------- lock

  getMutex(key: string): CacheMutex | undefined {
    if (!this.distributedLock) return undefined
    return new RedisMutex(this, key, this.#lockKey(key))
  }

  /**
   * The lock key of `key`: `<prefix>corral:lock:<key>`. The lock scripts touch the lock and the value together,
   * so on a cluster both must live in one hash slot: when that name falls in another slot than the value, the
   * lock key gets a hash tag of the value's slot, `<prefix>corral:lock:{<tag>}<key>`.
   */
  #lockKey(key: string): string {
    const plain = `${this.keyPrefix}corral:lock:${key}`
    if (!this.isCluster) return plain
    const slot = this.#slotOf!(this.keyPrefix + key)
    if (this.#slotOf!(plain) === slot) return plain
    return `${this.keyPrefix}corral:lock:{${this.#slotTag(slot)}}${key}`
  }

  /**
   * A short string whose lock key `<prefix>corral:lock:{<it>}...` hashes to `slot`. Found by trying base-36
   * numbers in turn, remembering every slot met on the way: all 16384 are known after about 160,000 tries in all.
   */
  #slotTag(slot: number): string {
    let tag = this.#slotTags.get(slot)
    const base = `${this.keyPrefix}corral:lock:{`
    while (tag === undefined) {
      const candidate = (this.#slotTagSearch++).toString(36)
      const found = this.#slotOf!(`${base}${candidate}}`)
      if (!this.#slotTags.has(found)) this.#slotTags.set(found, candidate)
      if (found === slot) tag = candidate
    }
    return tag
  }

  /** The channel on which releases of `key`'s lock are published to the waiters. */
  #releaseChannel(key: string): string {
    return `${this.keyPrefix}corral:released:${key}`
  }

  /**
   * @internal One `ACQUIRE`: takes the lock (reading the value with it) or reports its holder. `wait`: the caller
   * is going to wait, so the holder's release must publish.
   */
  async lockAttempt(lockKey: string, key: string, lockValue: string, wait: boolean): Promise<RedisLockAttempt> {
    const reply = (await this.evalScriptBuffer(
      ACQUIRE,
      [lockKey, this.keyPrefix + key],
      [lockValue, String(Math.ceil(this.lockTimeoutMs)), wait ? '1' : '0'],
    )) as [number, Buffer | null, Buffer | null | undefined]
    if (Number(reply[0]) === 1) {
      const data = reply[1]
      return {
        acquired: true,
        remainingMs: undefined,
        current: data === null ? NO_VALUE : decodeCachedValue(data, this.#serializer),
      }
    }
    const remainingMs = Math.max(0, Number(reply[1]))
    const holder = reply[2]
    if (holder === null || holder === undefined) return { acquired: false, remainingMs }
    // "<token> <traceparent or -> [w]"; anything else (a foreign or corrupt lock) is its own identity.
    const [token, traceparent] = holder.toString('latin1').split(' ')
    const holderInfo = holderOf(traceparent)
    return holderInfo
      ? { acquired: false, remainingMs, holder: token, holderInfo }
      : { acquired: false, remainingMs, holder: token }
  }

  /**
   * @internal One `RELEASE`: frees the lock if it still holds `token`, first storing `store.value` fenced, and
   * publishes the release to the waiters (with the value when it is at most `RELEASE_MESSAGE_VALUE_LIMIT` bytes).
   * Resolves to whether it stored.
   */
  async lockRelease(lockKey: string, key: string, token: string, store: FencedStore | undefined): Promise<boolean> {
    const args: Array<string | Buffer> = [
      token,
      this.#releaseChannel(key),
      traceparentField(store?.holder),
      String(RELEASE_MESSAGE_VALUE_LIMIT),
    ]
    if (store !== undefined) {
      const ttl = this.#ttlMs
      args.push(
        encodeCachedValue(store.value, this.#serializer),
        '1',
        ttl === undefined ? '' : String(ttl),
        String(store.since),
        String(believableUntil()),
      )
    }
    return Number(await this.evalScript(RELEASE, [lockKey, this.keyPrefix + key], args)) === RELEASED_STORED
  }

  /** @internal */
  async lockHeld(lockKey: string): Promise<boolean> {
    return (await this.run(() => this.client.exists(lockKey))) > 0
  }

  /**
   * @internal Waits for the release of `key`'s lock: subscribes to its release channel (until `dispose`) before
   * the caller's next attempt, so a release between that attempt and the wait cannot be missed. `wait` resolves
   * `true` when a release message handed over the value (then in `released`), and when woken otherwise (a release
   * without the value, the subscriber reconnecting) or by the timer.
   */
  async lockWaiter(key: string): Promise<RedisLockWaiter> {
    const channel = this.#releaseChannel(key)
    let wake: ((handedOver: boolean) => void) | undefined
    /** a wake-up that came while the caller was not waiting (between an attempt and the next wait) */
    let pending: boolean | undefined
    let released: HandedOver | undefined
    const onRelease = (message?: Buffer) => {
      const handedOver = message === undefined ? undefined : this.#handedOver(message)
      if (handedOver !== undefined) released = handedOver
      const done = released !== undefined
      if (wake) wake(done)
      else pending = done || pending === true
    }
    let waiters = this.#lockWaiters.get(channel)
    if (!waiters) {
      this.#lockWaiters.set(channel, (waiters = new Set()))
      this.#channels.set(channel, (message) => {
        for (const waiter of [...(this.#lockWaiters.get(channel) ?? [])]) waiter(message)
      })
    }
    waiters.add(onRelease)
    const set = waiters
    // If the subscription is slow (or Redis is away), do not hold the waiter back: polling covers it.
    await Promise.race([this.#subscribeChannel(channel), new Promise((resolve) => setTimeout(resolve, 250).unref())])
    return {
      get released() {
        return released
      },
      wait: (ms) => {
        if (pending !== undefined) {
          const done = pending
          pending = undefined
          return Promise.resolve(done)
        }
        return new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => finish(false), Math.max(0, ms))
          const finish = (done: boolean) => {
            clearTimeout(timer)
            wake = undefined
            resolve(done)
          }
          wake = finish
        })
      },
      dispose: () => {
        set.delete(onRelease)
        if (set.size === 0 && this.#lockWaiters.get(channel) === set) {
          this.#lockWaiters.delete(channel)
          this.#channels.delete(channel)
          // Off the waiter's way: it is answering its callers now.
          setImmediate(() => {
            const subscriber = this.#subscriber
            if (!subscriber || this.#closed || subscriber.status !== 'ready' || this.#channels.has(channel)) return
            subscriber.unsubscribe(channel).catch(() => {})
          })
        }
        wake?.(released !== undefined)
      },
    }
  }

  /**
   * The value a release message hands over: `v <traceparent>\n<value bytes>`; `undefined` for the other kinds
   * (`s`: stored but too large to carry, `n`: nothing stored) and for anything unreadable.
   */
  #handedOver(message: Buffer): HandedOver | undefined {
    if (message[0] !== 0x76 /* v */) return undefined
    const newline = message.indexOf(0x0a)
    if (newline < 0) return undefined
    const value = decodeCachedValue(message.subarray(newline + 1), this.#serializer)
    if (value === NO_VALUE) return undefined
    return { value, holder: holderOf(message.subarray(2, newline).toString('latin1')) }
  }

  /** Subscribes the subscriber connection to `channel` (whose handler is in `#channels`); never rejects. */
  async #subscribeChannel(channel: string): Promise<boolean> {
    try {
      const subscriber = this.#ensureSubscriber()
      await withTimeout(subscriber.subscribe(channel), Math.max(1000, this.commandTimeoutMs), 'SUBSCRIBE')
      return true
    } catch (error) {
      this.#errors.report('subscribe', error)
      return false
    }
  }

  // ---------------------------------------------------------------- invalidation

  createInvalidator(regionName: string): RegionInvalidator {
    // The first reads wait for its marks to be loaded, so nothing invalidated is served at startup.
    return this.#invalidators.add(new RedisInvalidator(this, regionName))
  }

  /** @internal */
  forgetInvalidator(invalidator: RedisInvalidator): void {
    this.#invalidators.forget(invalidator)
  }

  // ---------------------------------------------------------------- pub/sub

  /** The L1 bus of regions with an L1 in front of this backend: pub/sub on its own connections. */
  createBus(): L1Bus {
    return new RedisBus(this)
  }

  /**
   * @internal Subscribes `handler` to `channel` on the backend's one subscriber connection (messages as UTF-8
   * text). One handler per channel; the subscription is renewed whenever the connection comes back.
   */
  async subscribe(channel: string, handler: (message: string) => void): Promise<void> {
    this.#channels.set(channel, (message) => handler(message.toString('utf8')))
    const subscriber = this.#ensureSubscriber()
    await withTimeout(subscriber.subscribe(channel), Math.max(1000, this.commandTimeoutMs), 'SUBSCRIBE')
  }

  /**
   * @internal Tells `listener` when the subscriber connection drops (`false`: what is published from then on is lost
   * to this process) and each time it is connected with every channel subscribed again (`true`). Returns a function
   * that stops telling it.
   */
  watchSubscriber(listener: (connected: boolean) => void): () => void {
    this.#subscriberWatchers.add(listener)
    return () => this.#subscriberWatchers.delete(listener)
  }

  /** @internal */
  async unsubscribe(channel: string): Promise<void> {
    if (!this.#channels.delete(channel)) return
    if (this.#subscriber && !this.#closed && this.#subscriber.status === 'ready') {
      await this.#subscriber.unsubscribe(channel).catch(() => {})
    }
  }

  #ensureSubscriber(): RedisClient {
    if (this.#closed) throw new BackendError('redis backend: closed')
    if (this.#subscriber) return this.#subscriber
    const subscriber = this.isCluster
      ? (this.client as Cluster).duplicate(undefined, { enableOfflineQueue: true })
      : (this.client as Redis).duplicate({ enableOfflineQueue: true, maxRetriesPerRequest: null })
    subscriber.on('error', (error: unknown) => this.#errors.report('subscriber', error))
    subscriber.on('messageBuffer', (channel: Buffer, message: Buffer) => {
      try {
        this.#channels.get(channel.toString('utf8'))?.(message)
      } catch (error) {
        // A handler that throws must not reach ioredis's parser (an uncaught exception).
        this.#errors.report('subscriber', error)
      }
    })
    // Messages published while the subscriber is away are lost: stop trusting the tag marks they could change.
    subscriber.on('close', () => {
      for (const invalidator of this.#invalidators) invalidator.distrustTags()
      for (const watch of this.#subscriberWatchers) watch(false)
    })
    let connectedBefore = false
    subscriber.on('ready', () => {
      // (Re)connected: subscriptions that failed are retried (subscribing twice is harmless), and what was
      // published while the subscriber was away is re-read; after a reconnection, tag marks mirrored before are
      // read again before they are used.
      const reconnected = connectedBefore
      connectedBefore = true
      const channels = [...this.#channels.keys()]
      if (channels.length > 0)
        subscriber.subscribe(...channels).then(
          () => {
            if (reconnected) for (const invalidator of this.#invalidators) invalidator.distrustTags()
            for (const watch of this.#subscriberWatchers) watch(true)
          },
          () => {},
        )
      for (const invalidator of this.#invalidators) void invalidator.refresh()
      // Releases may have been missed meanwhile: the lock waiters try again.
      for (const waiters of this.#lockWaiters.values()) for (const wake of [...waiters]) wake()
    })
    this.#subscriber = subscriber
    return subscriber
  }

  // ---------------------------------------------------------------- plumbing

  /**
   * Runs a command. Once the client has connected (or failed to), a client that is not connected now fails the
   * call at once (ioredis would otherwise queue it until it reconnects); while the first connection is being
   * made, calls are queued for at most `commandTimeout`.
   * @internal
   */
  run<T>(command: () => Promise<T>): Promise<T> {
    const status = this.client.status
    if (status === 'ready') return command()
    if (this.#closed || status === 'end' || this.#connectSettled) {
      return Promise.reject(
        new BackendError(`redis backend: not connected (${this.#closed ? 'closed' : `status ${status}`})`),
      )
    }
    return withTimeout(command(), this.commandTimeoutMs, 'a command before the first connection')
  }

  /** @internal EVALSHA, or EVAL when the server does not have the script cached */
  evalScript(lua: Script, keys: string[], args: Array<string | Buffer>): Promise<unknown> {
    return this.run(async () => {
      try {
        return await this.client.evalsha(lua.sha, keys.length, ...keys, ...args)
      } catch (error) {
        if (!String((error as Error)?.message).startsWith('NOSCRIPT')) throw error
        return await this.client.eval(lua.lua, keys.length, ...keys, ...args)
      }
    })
  }

  /** @internal `evalScript`, with the strings of the reply as bytes */
  evalScriptBuffer(lua: Script, keys: string[], args: Array<string | Buffer>): Promise<unknown> {
    return this.run(async () => {
      try {
        return await this.client.callBuffer('evalsha', [lua.sha, keys.length, ...keys, ...args])
      } catch (error) {
        if (!String((error as Error)?.message).startsWith('NOSCRIPT')) throw error
        return await this.client.callBuffer('eval', [lua.lua, keys.length, ...keys, ...args])
      }
    })
  }

  /** @internal */
  reportBackground(operation: string, error: unknown): void {
    this.#errors.report(operation, error)
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#invalidators.stopAll()
    for (const waiters of this.#lockWaiters.values()) for (const wake of [...waiters]) wake()
    this.#channels.clear()
    const subscriber = this.#subscriber
    this.#subscriber = undefined
    subscriber?.disconnect()
    if (this.#ownsClient) {
      try {
        await withTimeout(this.client.quit(), 1000, 'QUIT')
      } catch {
        this.client.disconnect()
      }
    }
    // Leave a client the user owns as we found it; a closed client of ours must not log unhandled errors.
    this.client.off('ready', this.#onReady)
    this.client.off('close', this.#onReady)
    this.client.off('error', this.#onError)
    if (this.#ownsClient) this.client.on('error', () => {})
  }
}

/** The latest creation time a fence believes: later ones come from a clock that runs ahead (see `freshness.ts`). */
function believableUntil(): number {
  return Date.now() + FUTURE_CREATION_TOLERANCE_MS
}

/** Reconnect quickly after a blip, then every second at most. */
function retryStrategy(times: number): number {
  return Math.min(50 * 2 ** Math.min(times, 5), 1000)
}

function isRedisClient(value: unknown): value is RedisClient {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Redis).getBuffer === 'function' &&
    typeof (value as Redis).duplicate === 'function' &&
    typeof (value as Redis).status === 'string'
  )
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new BackendError(`redis backend: ${what} got no answer within ${Math.round(ms)} ms`)),
      ms,
    )
    promise.then(
      (value) => {
        clearTimeout(timer)
        resolve(value)
      },
      (error: unknown) => {
        clearTimeout(timer)
        reject(error)
      },
    )
  })
}
