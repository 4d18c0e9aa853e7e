import { createHash, randomBytes } from 'node:crypto'
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
} from '../cached-value.js'
import { type Duration } from '../durations.js'
import { describeValue } from '../describe-value.js'
import { BackendError, ValidationError } from '../errors.js'
import { LocalInvalidator } from '../invalidation.js'
import type { BackendContext, CacheBackend, CacheMutex, InvalidationState, RegionInvalidator } from './api.js'
import { readArguments } from './arguments.js'
import {
  ErrorThrottle,
  Poller,
  durationMs,
  jittered,
  loadOptionalPeer,
  parseHostList,
  serverTtlSeconds,
  waitForLock,
  type LockAttempt,
  type LockWaiter,
} from './distributed.js'
import { TAG_MARK_GRACE_MS, TagMirror, chunks, parseTagMarks } from './tag-marks.js'

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

/** A Lua script run by EVALSHA, falling back to EVAL when the server does not know it (after a restart). */
interface Script {
  readonly lua: string
  readonly sha: string
}

const script = (lua: string): Script => ({ lua, sha: createHash('sha1').update(lua).digest('hex') })

/** SET NX PX, or the holder's remaining time when the lock is taken (-1: no expiry). */
const ACQUIRE = script(`if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return -3 end
return redis.call('pttl', KEYS[1])`)

/** Compare-and-delete: frees the lock only if it still holds our token, then tells the waiters. */
const RELEASE = script(`if redis.call('get', KEYS[1]) == ARGV[1] then
  redis.call('del', KEYS[1])
  redis.call('publish', ARGV[2], ARGV[3])
  return 1
end
return 0`)

/**
 * Max-merges one invalidation mark into the region's hash and publishes the merged marks. Times travel as the
 * strings JavaScript printed (Lua's tostring would round them to 14 digits).
 */
const INVALIDATE = script(`local current = redis.call('hget', KEYS[1], ARGV[1])
local known = current and tonumber(current)
if (not known) or tonumber(ARGV[2]) > known then redis.call('hset', KEYS[1], ARGV[1], ARGV[2]) end
local hard = redis.call('hget', KEYS[1], 'hard') or '0'
local soft = redis.call('hget', KEYS[1], 'soft') or '0'
if ARGV[3] ~= '' then redis.call('publish', ARGV[3], hard .. ' ' .. soft) end
return {hard, soft}`)

/** INCRBY, then (re)sets the counter's expiry: a counter lives `ttl` after its last increment. */
const INCREMENT = script(`local value = redis.call('incrby', KEYS[1], ARGV[1])
if ARGV[2] ~= '' then redis.call('pexpire', KEYS[1], ARGV[2]) end
return value`)

/**
 * Max-merges tag marks. KEYS: the tags' keys; ARGV: the marks' lifetime after their latest time in ms (-1: no
 * expiry), the caller's clock (ms), the channel to publish on ('' for none), then per key its tag, hard and soft
 * time ('0': unchanged). Each key holds "<hard>,<soft>" (times as JavaScript printed them), expiring when the
 * latest of its times is `lifetime` old (never sooner than it already would). Returns the merged marks in key
 * order, and publishes them as a JSON array [tag, marks, tag, marks, ...].
 */
const MERGE_TAGS = script(`local ttl = tonumber(ARGV[1])
local now = tonumber(ARGV[2])
local merged = {}
local message = {}
for i, key in ipairs(KEYS) do
  local tag = ARGV[3 * i + 1]
  local hard = ARGV[3 * i + 2]
  local soft = ARGV[3 * i + 3]
  local current = redis.call('get', key)
  if current then
    local comma = string.find(current, ',', 1, true)
    if comma then
      local storedHard = string.sub(current, 1, comma - 1)
      local storedSoft = string.sub(current, comma + 1)
      if (tonumber(storedHard) or 0) >= tonumber(hard) then hard = storedHard end
      if (tonumber(storedSoft) or 0) >= tonumber(soft) then soft = storedSoft end
    end
  end
  local value = hard .. ',' .. soft
  if value ~= current then
    local pttl = redis.call('pttl', key)
    if ttl < 0 or pttl == -1 then
      redis.call('set', key, value)
    else
      local px = math.max(tonumber(hard), tonumber(soft)) + ttl - now
      if pttl > px then px = pttl end
      if px < 1 then px = 1 end
      redis.call('set', key, value, 'PX', string.format('%d', math.ceil(px)))
    end
  end
  merged[i] = value
  message[2 * i - 1] = tag
  message[2 * i] = value
end
if ARGV[3] ~= '' then redis.call('publish', ARGV[3], cjson.encode(message)) end
return merged`)

const ACQUIRED = -3
/** How long the first reads of a region wait for its invalidation channel's subscription. */
const SUBSCRIBE_WAIT_MS = 250
const LOCK_GRACE_MS = 100

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
  readonly #invalidators = new Set<RedisInvalidator>()
  readonly #pendingLoads = new Set<Promise<void>>()
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
    this.#ttlMs = toMs(serverTtlSeconds('redis', 'redisExpirationTime', this.#ttlArgument, undefined))
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
    this.#ttlMs = toMs(serverTtlSeconds('redis', 'redisExpirationTime', this.#ttlArgument, context.expirationTime))
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
    if (this.#pendingLoads.size > 0) await this.#invalidationLoaded()
    const data = await this.run(() => this.client.getBuffer(this.keyPrefix + key))
    return data === null ? NO_VALUE : decodeCachedValue(data, this.#serializer)
  }

  async getMulti(keys: readonly string[]): Promise<Array<CachedValue | NoValue>> {
    if (keys.length === 0) return []
    if (this.#pendingLoads.size > 0) await this.#invalidationLoaded()
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
    await this.#setMany(entries, toMs(ttlSeconds))
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
    const ttl = toMs(ttlSeconds)
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
    return new RedisMutex(this, `${this.keyPrefix}corral:lock:${key}`)
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
    const invalidator = new RedisInvalidator(this, regionName)
    this.#invalidators.add(invalidator)
    const loading = invalidator.loaded.finally(() => this.#pendingLoads.delete(loading))
    this.#pendingLoads.add(loading)
    return invalidator
  }

  /** The first reads wait for the invalidation marks to be loaded, so nothing invalidated is served at startup. */
  async #invalidationLoaded(): Promise<void> {
    await Promise.all(this.#pendingLoads)
  }

  /** @internal */
  forgetInvalidator(invalidator: RedisInvalidator): void {
    this.#invalidators.delete(invalidator)
  }

  // ---------------------------------------------------------------- pub/sub

  /** @internal subscribes `handler` to `channel` on the backend's one subscriber connection */
  async subscribe(channel: string, handler: (message: string) => void): Promise<void> {
    this.#channels.set(channel, handler)
    const subscriber = this.#ensureSubscriber()
    await withTimeout(subscriber.subscribe(channel), Math.max(1000, this.commandTimeoutMs), 'SUBSCRIBE')
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
    for (const invalidator of [...this.#invalidators]) invalidator.stop()
    this.#invalidators.clear()
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

class RedisMutex implements CacheMutex {
  #token: string | undefined

  constructor(
    private readonly backend: RedisBackend,
    private readonly lockKey: string,
  ) {}

  async acquire(wait: boolean): Promise<boolean> {
    const token = randomBytes(16).toString('hex')
    const first = await this.backend.lockAttempt(this.lockKey, token)
    if (first.acquired || !wait) {
      if (first.acquired) this.#token = token
      return first.acquired
    }
    const waiter = await this.backend.lockWaiter(this.lockKey)
    const acquired = await waitForLock(() => this.backend.lockAttempt(this.lockKey, token), waiter, {
      lockTimeoutMs: this.backend.lockTimeoutMs,
      nextDelayMs: () => jittered(this.backend.lockPollIntervalMs),
      graceMs: LOCK_GRACE_MS,
    })
    if (acquired) this.#token = token
    return acquired
  }

  async release(): Promise<void> {
    const token = this.#token
    if (token === undefined) return
    this.#token = undefined
    try {
      await this.backend.lockRelease(this.lockKey, token)
    } catch (error) {
      // The lock expires by itself after lockTimeout.
      this.backend.reportBackground('unlock', error)
    }
  }

  locked(): Promise<boolean> {
    return this.backend.lockHeld(this.lockKey)
  }
}

/**
 * Region invalidation marks shared through Redis: a hash `<prefix>corral:invalidation:<region>` with fields
 * `hard` and `soft` (epoch milliseconds, max-merged by a script) and a channel of the same name on which every
 * change is published. Each process keeps a local copy (`current()` is synchronous), updated by the channel at
 * once, and by re-reading the hash at least every `invalidationPollInterval` (jittered) in case a message was
 * missed (the subscriber was reconnecting). A process that holds marks newer than the hash (its write failed
 * during an outage, or the hash was evicted) writes them back.
 *
 * Tag marks: one key per tag, `<prefix>corral:tag:{<region>}:<tag>`, holding `"<hardAt>,<softAt>"`, max-merged by
 * a script that publishes the merged marks on the region's channel (a JSON array, told apart from the region's
 * `"<hard> <soft>"` messages by its `[`). The `{<region>}` hash tag puts every tag of a region in one slot of a
 * cluster, so a batch of tags is one MGET (or one script) there too. A mark expires `tagMarkTtlMs` after its latest
 * time: by then every value it could invalidate has expired on the server; without a server TTL on values, marks
 * do not expire either (they are as many as the distinct tags invalidated).
 *
 * Each process mirrors the tags it reads in a bounded LRU (`TagMirror`): the hit path asks it synchronously. A
 * mirrored mark is trusted for 2 × `invalidationPollInterval` and until the subscriber drops or (re)subscribes;
 * notifications update it at once, and the marks of tags read since the last poll are re-read (batched) at every
 * poll, so tags in use stay trusted and a hit costs the one GET. An unknown or untrusted tag costs one MGET,
 * batched over all the tags a read needs and shared by concurrent reads.
 */
class RedisInvalidator implements RegionInvalidator {
  readonly #local = new LocalInvalidator()
  readonly #tags: TagMirror
  readonly #key: string
  readonly #tagPrefix: string
  readonly #poller: Poller
  readonly loaded: Promise<void>
  #stopped = false

  constructor(
    private readonly backend: RedisBackend,
    regionName: string,
  ) {
    this.#key = `${backend.keyPrefix}corral:invalidation:${regionName}`
    this.#tagPrefix = `${backend.keyPrefix}corral:tag:{${regionName}}:`
    this.#tags = new TagMirror(2 * backend.invalidationPollIntervalMs, () => backend.tagMarkTtlMs)
    const subscribed = this.backend
      .subscribe(this.#key, (message) => {
        if (message.startsWith('[')) this.#applyTagMessage(message)
        else this.#applyRemote(message.split(' '))
      })
      // Tags mirrored before the subscription was in place could have missed a notification.
      .then(() => this.#tags.distrust())
      .catch((error: unknown) => {
        // polling keeps the marks current until the subscriber reconnects
        this.backend.reportBackground('subscribe', error)
      })
    // The first reads wait for the marks and for the subscription (briefly: if it is slow, polling covers it).
    this.loaded = Promise.all([
      this.refresh(),
      Promise.race([subscribed, new Promise((resolve) => setTimeout(resolve, SUBSCRIBE_WAIT_MS).unref())]),
    ]).then(() => {})
    this.#poller = new Poller(backend.invalidationPollIntervalMs, () => this.refresh())
  }

  current(): InvalidationState {
    return this.#local.current()
  }

  async invalidate(hard: boolean, at: number): Promise<void> {
    this.#local.apply(hard, at)
    const merged = await this.backend.evalScript(
      INVALIDATE,
      [this.#key],
      [hard ? 'hard' : 'soft', String(at), this.#key],
    )
    this.#applyRemote(merged)
  }

  tagMarks(tag: string): InvalidationState | undefined {
    return this.#tags.marks(tag)
  }

  async invalidateTags(tags: readonly string[], hard: boolean, at: number): Promise<void> {
    for (const tag of tags) this.#tags.applyLocal(tag, hard, at)
    try {
      await this.#mergeTags(tags.map((tag) => [tag, hard ? { hardAt: at, softAt: 0 } : { hardAt: 0, softAt: at }]))
    } catch (error) {
      // Kept here, and written back at a later poll once Redis answers.
      this.#tags.markUnsynced(tags)
      throw error
    }
  }

  loadTags(tags: readonly string[]): Promise<void> {
    return this.#tags.load(tags, (missing) => this.#fetchTags(missing))
  }

  /** Re-reads the marks; never throws (failures are reported, rate-limited). */
  async refresh(): Promise<void> {
    if (this.#stopped) return
    try {
      const fields = await this.backend.run(() => this.backend.client.hgetall(this.#key))
      const remote = { hardAt: Number(fields.hard ?? 0) || 0, softAt: Number(fields.soft ?? 0) || 0 }
      this.#local.apply(true, remote.hardAt)
      this.#local.apply(false, remote.softAt)
      const local = this.#local.current()
      if (local.hardAt > remote.hardAt)
        await this.backend.evalScript(INVALIDATE, [this.#key], ['hard', String(local.hardAt), ''])
      if (local.softAt > remote.softAt)
        await this.backend.evalScript(INVALIDATE, [this.#key], ['soft', String(local.softAt), ''])
    } catch (error) {
      this.backend.reportBackground('invalidationRefresh', error)
    }
    await this.#refreshTags()
  }

  /** Writes back marks Redis lacks, then re-reads the tags read since the last poll. Never throws. */
  async #refreshTags(): Promise<void> {
    const unsynced = this.#tags.takeUnsynced()
    if (unsynced.length > 0) {
      try {
        await this.#mergeTags(unsynced)
      } catch (error) {
        this.#tags.markUnsynced(unsynced.map(([tag]) => tag))
        this.backend.reportBackground('tagRefresh', error)
      }
    }
    const used = this.#tags.takeUsed()
    try {
      for (const chunk of chunks(used)) await this.#fetchTags(chunk)
    } catch (error) {
      this.backend.reportBackground('tagRefresh', error)
    }
  }

  /** One MGET (per slot, sent together, on a cluster) for `tags`; absent tags are recorded as not invalidated. */
  async #fetchTags(tags: readonly string[]): Promise<void> {
    if (this.#stopped || tags.length === 0) return
    const keys = tags.map((tag) => this.#tagPrefix + tag)
    const client = this.backend.client
    await this.backend.run(() =>
      Promise.all(
        this.backend.slotGroups(keys).map(async (indexes) => {
          const values = await client.mget(...indexes.map((i) => keys[i]!))
          indexes.forEach((i, j) => this.#tags.record(tags[i]!, parseTagMarks(values[j])))
        }),
      ),
    )
  }

  /** Max-merges marks into Redis (one script per slot) and records the merged marks. */
  async #mergeTags(entries: ReadonlyArray<readonly [string, InvalidationState]>): Promise<void> {
    if (entries.length === 0) return
    const keys = entries.map(([tag]) => this.#tagPrefix + tag)
    const ttl = this.backend.tagMarkTtlMs
    await Promise.all(
      this.backend.slotGroups(keys).map(async (indexes) => {
        const args = [ttl === undefined ? '-1' : String(ttl), String(Date.now()), this.#key]
        for (const i of indexes) {
          const [tag, marks] = entries[i]!
          args.push(tag, String(marks.hardAt), String(marks.softAt))
        }
        const merged = await this.backend.evalScript(
          MERGE_TAGS,
          indexes.map((i) => keys[i]!),
          args,
        )
        if (!Array.isArray(merged)) return
        indexes.forEach((i, j) => this.#tags.record(entries[i]![0], parseTagMarks(String(merged[j] ?? ''))))
      }),
    )
  }

  #applyTagMessage(message: string): void {
    let parsed: unknown
    try {
      parsed = JSON.parse(message)
    } catch {
      return
    }
    if (!Array.isArray(parsed)) return
    for (let i = 0; i + 1 < parsed.length; i += 2) {
      const tag = parsed[i]
      const marks = parsed[i + 1]
      if (typeof tag === 'string' && typeof marks === 'string') this.#tags.recordIfKnown(tag, parseTagMarks(marks))
    }
  }

  #applyRemote(marks: unknown): void {
    if (!Array.isArray(marks)) return
    const hard = Number(marks[0])
    const soft = Number(marks[1])
    if (Number.isFinite(hard)) this.#local.apply(true, hard)
    if (Number.isFinite(soft)) this.#local.apply(false, soft)
  }

  /** @internal the subscriber dropped or (re)subscribed: notifications may have been missed */
  distrustTags(): void {
    this.#tags.distrust()
  }

  /** Stops the timer (the backend's subscriber goes away with the backend). */
  stop(): void {
    this.#stopped = true
    this.#poller.stop()
  }

  async close(): Promise<void> {
    this.stop()
    this.backend.forgetInvalidator(this)
    await this.backend.unsubscribe(this.#key)
  }
}

function toMs(seconds: number | undefined): number | undefined {
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
