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
import type { BackendContext, CacheBackend, CacheMutex, RegionInvalidator } from '../api.js'
import { readArguments } from '../arguments.js'
import {
  ErrorThrottle,
  durationMs,
  loadOptionalPeer,
  parseHostList,
  serverTtlSeconds,
  type LockAttempt,
  type LockWaiter,
} from '../shared/distributed.js'
import { InvalidatorSet } from '../shared/mirrored-invalidator.js'
import { TAG_MARK_GRACE_MS } from '../shared/tag-marks.js'
import { RedisInvalidator } from './invalidator.js'
import { RedisMutex } from './mutex.js'
import { ACQUIRE, ACQUIRED, INCREMENT, RELEASE, type Script } from './scripts.js'

type IoRedis = typeof import('ioredis')
type RedisClient = Redis | Cluster

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
  /** How long a lock lives (a dead holder blocks others at most this long) and a waiter waits. Default 30s. */
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
 * The distributed lock is `SET <prefix>corral:lock:<key> <token> NX PX <lockTimeout>`, released by a Lua
 * compare-and-delete that also PUBLISHes on `<prefix>corral:unlock`; waiters listen on one subscriber connection
 * per backend and fall back to polling. Invalidation marks live in the hash `<prefix>corral:invalidation:<region>`
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
  readonly #channels = new Map<string, (message: string) => void>()
  #unlockSubscription: Promise<boolean> | undefined
  readonly #lockWaiters = new Map<string, Set<() => void>>()
  readonly #subscriberWatchers = new Set<(connected: boolean) => void>()
  readonly #invalidators = new InvalidatorSet<RedisInvalidator>()
  readonly #unlockChannel: string
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
    this.#ttlMs = pxMilliseconds(serverTtlSeconds('redis', 'redisExpirationTime', this.#ttlArgument, undefined))
    this.#unlockChannel = `${this.keyPrefix}corral:unlock`

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
    this.#ttlMs = pxMilliseconds(
      serverTtlSeconds('redis', 'redisExpirationTime', this.#ttlArgument, context.expirationTime),
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

  async setMulti(entries: ReadonlyArray<readonly [string, CachedValue]>): Promise<void> {
    await this.#setMany(entries, this.#ttlMs)
  }

  async setMultiWithTtl(entries: ReadonlyArray<readonly [string, CachedValue]>, ttlSeconds: number): Promise<void> {
    await this.#setMany(entries, pxMilliseconds(ttlSeconds))
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
    const ttl = pxMilliseconds(ttlSeconds)
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
    return new RedisMutex(this, key, `${this.keyPrefix}corral:lock:${key}`)
  }

  /** @internal one SET NX PX; on failure, how long the holder's lock has left */
  async lockAttempt(lockKey: string, token: string): Promise<LockAttempt> {
    const result = Number(await this.evalScript(ACQUIRE, [lockKey], [token, String(Math.ceil(this.lockTimeoutMs))]))
    if (result === ACQUIRED) return { acquired: true }
    // -2: gone between the two calls (take it on the next attempt); -1: a lock without expiry (not ours).
    return { acquired: false, remainingMs: result === -2 ? 0 : result >= 0 ? result : undefined }
  }

  /** @internal compare-and-delete, then a release notification */
  async lockRelease(lockKey: string, token: string): Promise<void> {
    await this.evalScript(RELEASE, [lockKey], [token, this.#unlockChannel, lockKey])
  }

  /** @internal */
  async lockHeld(lockKey: string): Promise<boolean> {
    return (await this.run(() => this.client.exists(lockKey))) > 0
  }

  /** @internal waits for a release notification on `lockKey`, or a timer */
  async lockWaiter(lockKey: string): Promise<LockWaiter> {
    let wake: (() => void) | undefined
    let notified = false
    const onRelease = () => {
      if (wake) wake()
      else notified = true
    }
    let set = this.#lockWaiters.get(lockKey)
    if (!set) this.#lockWaiters.set(lockKey, (set = new Set()))
    set.add(onRelease)
    const waiters = set
    // Subscribe before the next attempt, so a release between that attempt and the wait cannot be missed. If the
    // subscription is slow (or Redis is away), do not hold the waiter back: polling covers it.
    await Promise.race([this.#subscribeUnlock(), new Promise((resolve) => setTimeout(resolve, 250).unref())])
    return {
      wait: (ms) => {
        if (notified) {
          notified = false
          return Promise.resolve()
        }
        return new Promise<void>((resolve) => {
          const done = () => {
            clearTimeout(timer)
            wake = undefined
            resolve()
          }
          const timer = setTimeout(done, Math.max(0, ms))
          wake = done
        })
      },
      dispose: () => {
        waiters.delete(onRelease)
        if (waiters.size === 0 && this.#lockWaiters.get(lockKey) === waiters) this.#lockWaiters.delete(lockKey)
        wake?.()
      },
    }
  }

  #subscribeUnlock(): Promise<boolean> {
    this.#unlockSubscription ??= this.subscribe(this.#unlockChannel, (lockKey) => {
      const waiters = this.#lockWaiters.get(lockKey)
      if (waiters) for (const wake of [...waiters]) wake()
    }).then(
      () => true,
      (error: unknown) => {
        this.#unlockSubscription = undefined
        this.#errors.report('subscribe', error)
        return false
      },
    )
    return this.#unlockSubscription
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

  /** @internal subscribes `handler` to `channel` on the backend's one subscriber connection */
  async subscribe(channel: string, handler: (message: string) => void): Promise<void> {
    this.#channels.set(channel, handler)
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
    subscriber.on('message', (channel: string, message: string) => this.#channels.get(channel)?.(message))
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
  evalScript(lua: Script, keys: string[], args: string[]): Promise<unknown> {
    return this.run(async () => {
      try {
        return await this.client.evalsha(lua.sha, keys.length, ...keys, ...args)
      } catch (error) {
        if (!String((error as Error)?.message).startsWith('NOSCRIPT')) throw error
        return await this.client.eval(lua.lua, keys.length, ...keys, ...args)
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

/**
 * A time to live in seconds as Redis's PX / PEXPIRE argument: whole milliseconds, at least 1 (Redis rejects 0);
 * `undefined` (no expiry) stays `undefined`.
 */
function pxMilliseconds(seconds: number | undefined): number | undefined {
  return seconds === undefined ? undefined : Math.max(1, Math.ceil(seconds * 1000))
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
