import { createHash, randomBytes } from 'node:crypto'
import type { Client as MemjsClient } from 'memjs'
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
  serverTtlSeconds,
  sleep,
  waitForLock,
  type LockAttempt,
} from './distributed.js'
import { NO_MARKS, TAG_MARK_GRACE_MS, TagMirror, chunks, formatTagMarks, parseTagMarks } from './tag-marks.js'

type Memjs = typeof import('memjs')

export interface MemcachedBackendOptions {
  /** `'host:port,host:port'` (memjs syntax, `user:pass@host:port` for SASL). Default `'127.0.0.1:11211'`. */
  servers?: string
  /** A memjs `Client` you own: used as is, never closed by Corral. */
  client?: MemjsClient
  /** Prepended to every key this backend uses (no whitespace, at most 200 bytes). Default ''. */
  keyPrefix?: string
  /** Take a memcached lock around regeneration, so one process regenerates a key at a time. Default true. */
  distributedLock?: boolean
  /** How long a lock lives (a dead holder blocks others at most this long) and a waiter waits. Default 30s. */
  lockTimeout?: Duration
  /** The longest pause between a waiter's attempts (they back off from 10ms up to this, jittered). Default 100ms. */
  lockPollInterval?: Duration
  /** Server-side expiry of values; default 2 × the region's expiration + 60s; none without one; `-1`: none. */
  memcachedExpireTime?: Duration | -1
  /** memjs per-request timeout (connecting: twice this). Default 0.5s. */
  timeout?: Duration
  /**
   * How often invalidation marks are re-read from memcached (it has no pub/sub): the region's marks, and the marks
   * of the tags read since the last time. A tag's marks are trusted this long without a re-read. This bounds how
   * long another process takes to see an invalidation. Default 1s.
   */
  invalidationPollInterval?: Duration
}

/** memcached's longest relative expiry; anything longer is read as a unix timestamp. */
const MAX_RELATIVE_EXPIRY = 60 * 60 * 24 * 30
const MAX_KEY_BYTES = 250
/** Whitespace (ASCII and Unicode) and control characters: memcached's text protocol cannot carry them in keys. */
function unsafeKey(key: string): boolean {
  for (let i = 0; i < key.length; i++) {
    const code = key.charCodeAt(i)
    if (code <= 0x20 || (code >= 0x7f && code <= 0x9f)) return true
  }
  return /\s/u.test(key)
}
const MANGLED = /^sha1:[0-9a-f]{40}$/
const LOCK_GRACE_MS = 100

// memcached binary protocol (the one memjs speaks)
const OP_GET = 0x00
const OP_SET = 0x01
const OP_ADD = 0x02
const OP_DELETE = 0x04
const OP_INCREMENT = 0x05
const OP_TOUCH = 0x1c
const STATUS_OK = 0x0000
const STATUS_NOT_FOUND = 0x0001
const STATUS_EXISTS = 0x0002
const STATUS_NOT_STORED = 0x0005
const STATUS_NAMES: Record<number, string> = {
  0x0003: 'value too large',
  0x0004: 'invalid arguments',
  0x0006: 'not a number (incr on a value that is not a counter)',
  0x0081: 'unknown command',
  0x0082: 'out of memory',
  0x0084: 'internal error',
  0x0085: 'busy',
  0x0086: 'temporary failure',
}

interface Item {
  readonly value: Buffer
  /** the item's CAS version, for compare-and-swap / compare-and-delete */
  readonly cas: Buffer
}

/**
 * A memcached backend on memjs. Values are `encodeCachedValue` bytes with a server-side expiry derived from the
 * region's. Keys memcached cannot hold (over 250 bytes, whitespace or control characters) are replaced by
 * `keyPrefix + 'sha1:' + sha1(key)` inside the backend, whatever the region's `keyMangler` says.
 *
 * Commands go through memjs's `perform` with binary-protocol requests built here, because memjs's own methods
 * do not expose CAS: the lock uses it for a true compare-and-delete and to take over an expired lock atomically.
 *
 * The distributed lock is an `add` of `<token>:<expiresAtMs>` under `<prefix>corral:lock:<key>`; waiters poll
 * with jittered exponential backoff (memcached has no notifications). Invalidation marks live under
 * `<prefix>corral:invalidation:<region>` and are polled at least every `invalidationPollInterval`; tag marks live
 * one key per tag (see `MemcachedInvalidator`).
 *
 * Dependencies (`region.dependency()`) use `increment` (INCR with an initial value, plus a TOUCH so the counter
 * lives `ttl` after its last increment) and `setMultiWithTtl`. memjs's own `increment` is not used: it decodes the
 * 64-bit result wrongly and treats an expiry of 0 as "the client default".
 */
export class MemcachedBackend implements CacheBackend {
  readonly name = 'memcached'
  readonly client: MemjsClient
  readonly keyPrefix: string
  readonly distributedLock: boolean
  readonly lockTimeoutMs: number
  readonly lockPollIntervalMs: number
  readonly invalidationPollIntervalMs: number
  /** memcached expiry of a lock in whole seconds: its granularity is one second, so one more than lockTimeout. */
  readonly lockExpirySeconds: number

  readonly #ownsClient: boolean
  readonly #ttlArgument: unknown
  #ttlSeconds: number | undefined
  #serializer: Serializer = jsonSerializer
  readonly #errors = new ErrorThrottle()
  readonly #invalidators = new Set<MemcachedInvalidator>()
  readonly #pendingLoads = new Set<Promise<void>>()
  #closed = false

  constructor(options: MemcachedBackendOptions = {}) {
    const args = readArguments('memcached', options as Record<string, unknown>, {
      servers: 'string',
      client: 'any',
      keyPrefix: 'string',
      distributedLock: 'boolean',
      lockTimeout: 'duration',
      lockPollInterval: 'duration',
      memcachedExpireTime: 'duration',
      timeout: 'duration',
      invalidationPollInterval: 'duration',
    })
    this.keyPrefix = (args.keyPrefix as string | undefined) ?? ''
    if (Buffer.byteLength(this.keyPrefix) > 200 || unsafeKey(this.keyPrefix))
      throw new ValidationError(
        `memcached backend: argument "keyPrefix" must be at most 200 bytes without whitespace or control characters; got ${describeValue(this.keyPrefix)}`,
      )
    this.distributedLock = (args.distributedLock as boolean | undefined) ?? true
    this.lockTimeoutMs = durationMs('memcached', 'lockTimeout', args.lockTimeout, 30)
    this.lockPollIntervalMs = durationMs('memcached', 'lockPollInterval', args.lockPollInterval, 0.1)
    this.invalidationPollIntervalMs = durationMs(
      'memcached',
      'invalidationPollInterval',
      args.invalidationPollInterval,
      1,
    )
    this.lockExpirySeconds = Math.ceil(this.lockTimeoutMs / 1000) + 1
    const timeoutMs = durationMs('memcached', 'timeout', args.timeout, 0.5)
    this.#ttlArgument = args.memcachedExpireTime
    this.#ttlSeconds = serverTtlSeconds('memcached', 'memcachedExpireTime', this.#ttlArgument, undefined)

    if (args.client !== undefined) {
      if (args.servers !== undefined || args.timeout !== undefined)
        throw new ValidationError(
          'memcached backend: "client" is a configured client; do not combine it with "servers" or "timeout"',
        )
      const client = args.client as MemjsClient
      if (
        client === null ||
        typeof client !== 'object' ||
        typeof client.perform !== 'function' ||
        typeof client.incrSeq !== 'function'
      )
        throw new ValidationError(
          `memcached backend: argument "client" must be a memjs Client; got ${describeValue(client)}`,
        )
      this.client = client
      this.#ownsClient = false
    } else {
      const memjs = loadOptionalPeer<Memjs>('memcached', 'memjs')
      this.client = memjs.Client.create((args.servers as string | undefined) ?? '127.0.0.1:11211', {
        timeout: timeoutMs / 1000,
        conntimeout: (2 * timeoutMs) / 1000,
        // One immediate retry (a connection reset under our feet), then the call fails and the region falls back
        // to its creator: a refused connection costs a millisecond, a silent server `timeout`.
        retries: 2,
        retry_delay: 0,
        failover: false,
        keepAlive: true,
        // Failures reach the caller (and the region's backendError events); memjs would also print them.
        logger: { log: () => {} },
      })
      this.#ownsClient = true
    }
  }

  attach(context: BackendContext): void {
    this.#serializer = context.serializer
    this.#errors.context = context
    this.#ttlSeconds = serverTtlSeconds('memcached', 'memcachedExpireTime', this.#ttlArgument, context.expirationTime)
  }

  /** The key memcached stores `key` under: as is when memcached can hold it, else its SHA-1. */
  keyFor(key: string): string {
    const full = this.keyPrefix + key
    if (Buffer.byteLength(full) <= MAX_KEY_BYTES && !unsafeKey(full) && !MANGLED.test(key)) return full
    return `${this.keyPrefix}sha1:${createHash('sha1').update(key).digest('hex')}`
  }

  /** The memcached expiry field for a value stored now: seconds, or a unix time beyond 30 days, 0 for never. */
  #expiry(): number {
    return expiryField(this.#ttlSeconds)
  }

  // ---------------------------------------------------------------- values

  async get(key: string): Promise<CachedValue | NoValue> {
    if (this.#pendingLoads.size > 0) await Promise.all(this.#pendingLoads)
    const item = await this.getItem(this.keyFor(key))
    return item === null ? NO_VALUE : decodeCachedValue(item.value, this.#serializer)
  }

  async getMulti(keys: readonly string[]): Promise<Array<CachedValue | NoValue>> {
    if (keys.length === 0) return []
    if (this.#pendingLoads.size > 0) await Promise.all(this.#pendingLoads)
    // memjs 1.x has no multi-get: the GETs are written back to back on one connection per server and answered in
    // one round trip.
    const items = await Promise.all(keys.map((key) => this.getItem(this.keyFor(key))))
    return items.map((item) => (item === null ? NO_VALUE : decodeCachedValue(item.value, this.#serializer)))
  }

  async set(key: string, value: CachedValue): Promise<void> {
    const data = encodeCachedValue(value, this.#serializer)
    await this.store(OP_SET, this.keyFor(key), data, this.#expiry())
  }

  async setMulti(entries: ReadonlyArray<readonly [string, CachedValue]>): Promise<void> {
    // Encode everything first, so that one value that cannot be serialized stores nothing.
    const encoded = entries.map(
      ([key, value]) => [this.keyFor(key), encodeCachedValue(value, this.#serializer)] as const,
    )
    const expiry = this.#expiry()
    await Promise.all(encoded.map(([key, data]) => this.store(OP_SET, key, data, expiry)))
  }

  async setMultiWithTtl(entries: ReadonlyArray<readonly [string, CachedValue]>, ttlSeconds: number): Promise<void> {
    const encoded = entries.map(
      ([key, value]) => [this.keyFor(key), encodeCachedValue(value, this.#serializer)] as const,
    )
    const expiry = expiryField(ttlSeconds)
    await Promise.all(encoded.map(([key, data]) => this.store(OP_SET, key, data, expiry)))
  }

  /**
   * Adds `by` (≥ 0) to the counter at `key`: INCR, creating it at `by` when absent, then TOUCH, both written back to
   * back (one round trip), so that the counter lives `ttlSeconds` after its last increment, not its first. `by = 0`
   * is a plain GET that creates nothing.
   */
  async increment(key: string, by: number, ttlSeconds?: number): Promise<number> {
    if (!Number.isSafeInteger(by) || by < 0)
      throw new ValidationError(`memcached backend: increment by a whole number ≥ 0; got ${describeValue(by)}`)
    const full = this.keyFor(key)
    if (by === 0) {
      const item = await this.getItem(full)
      const value = item === null ? 0 : Number.parseInt(item.value.toString('latin1').trim(), 10)
      return Number.isFinite(value) ? value : 0
    }
    const expiry = expiryField(ttlSeconds)
    const extras = Buffer.alloc(20)
    extras.writeBigUInt64BE(BigInt(by), 0)
    extras.writeBigUInt64BE(BigInt(by), 8) // the initial value of a counter that does not exist yet
    extras.writeUInt32BE(expiry >>> 0, 16)
    const expiryExtras = Buffer.alloc(4)
    expiryExtras.writeUInt32BE(expiry >>> 0, 0)
    const [response] = await Promise.all([
      this.#request(OP_INCREMENT, full, extras, EMPTY),
      this.#request(OP_TOUCH, full, expiryExtras, EMPTY),
    ])
    if (response.status !== STATUS_OK) throw statusError('INCR', response.status)
    return Number(response.value.readBigUInt64BE(0))
  }

  async delete(key: string): Promise<void> {
    await this.remove(this.keyFor(key))
  }

  async deleteMulti(keys: readonly string[]): Promise<void> {
    await Promise.all(keys.map((key) => this.remove(this.keyFor(key))))
  }

  // ---------------------------------------------------------------- lock

  getMutex(key: string): CacheMutex | undefined {
    if (!this.distributedLock) return undefined
    return new MemcachedMutex(this, this.keyFor(`corral:lock:${key}`))
  }

  // ---------------------------------------------------------------- invalidation

  /**
   * How long a tag mark lives after its latest time, in milliseconds: as long as a value created before it can live on
   * the server (its expiry), plus a grace for slow writes and clock skew. `undefined` when values never expire.
   */
  get tagMarkTtlMs(): number | undefined {
    return this.#ttlSeconds === undefined ? undefined : this.#ttlSeconds * 1000 + TAG_MARK_GRACE_MS
  }

  createInvalidator(regionName: string): RegionInvalidator {
    const invalidator = new MemcachedInvalidator(this, regionName)
    this.#invalidators.add(invalidator)
    const loading = invalidator.loaded.finally(() => this.#pendingLoads.delete(loading))
    this.#pendingLoads.add(loading)
    return invalidator
  }

  /** @internal */
  forgetInvalidator(invalidator: MemcachedInvalidator): void {
    this.#invalidators.delete(invalidator)
  }

  /** @internal */
  reportBackground(operation: string, error: unknown): void {
    this.#errors.report(operation, error)
  }

  // ---------------------------------------------------------------- binary protocol

  /** @internal GET with the item's CAS; `null` when absent */
  async getItem(key: string): Promise<Item | null> {
    const response = await this.#request(OP_GET, key, EMPTY, EMPTY)
    if (response.status === STATUS_OK) return { value: response.value, cas: response.cas }
    if (response.status === STATUS_NOT_FOUND) return null
    throw statusError('GET', response.status)
  }

  /**
   * @internal SET or ADD (with `cas`: only if the item is still that version). False when the condition failed
   * (ADD of an existing key, CAS mismatch, item gone).
   */
  async store(opcode: number, key: string, value: Buffer, expiry: number, cas?: Buffer): Promise<boolean> {
    const extras = Buffer.alloc(8)
    extras.writeUInt32BE(expiry >>> 0, 4)
    const response = await this.#request(opcode, key, extras, value, cas)
    if (response.status === STATUS_OK) return true
    if (response.status === STATUS_EXISTS || response.status === STATUS_NOT_STORED) return false
    if (response.status === STATUS_NOT_FOUND && cas !== undefined) return false
    throw statusError(opcode === OP_ADD ? 'ADD' : 'SET', response.status)
  }

  /** @internal DELETE (with `cas`: only if the item is still that version); false when nothing was deleted */
  async remove(key: string, cas?: Buffer): Promise<boolean> {
    const response = await this.#request(OP_DELETE, key, EMPTY, EMPTY, cas)
    if (response.status === STATUS_OK) return true
    if (response.status === STATUS_NOT_FOUND || response.status === STATUS_EXISTS) return false
    throw statusError('DELETE', response.status)
  }

  #request(
    opcode: number,
    key: string,
    extras: Buffer,
    value: Buffer,
    cas?: Buffer,
  ): Promise<{ status: number; value: Buffer; cas: Buffer }> {
    if (this.#closed) return Promise.reject(new BackendError('memcached backend: closed'))
    return new Promise((resolve, reject) => {
      const client = this.client
      client.incrSeq()
      const seq = client.seq
      const request = buildRequest(opcode, Buffer.from(key, 'utf8'), extras, value, seq, cas)
      client.perform(key, request, seq, (error: Error | null, response?: MemjsResponse) => {
        if (error || !response) {
          reject(new BackendError(`memcached: ${error?.message ?? String(error)}`, { cause: error }))
          return
        }
        resolve({ status: response.header.status, value: response.val, cas: response.header.cas })
      })
    })
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    for (const invalidator of [...this.#invalidators]) invalidator.stop()
    this.#invalidators.clear()
    if (this.#ownsClient) this.client.close()
  }
}

interface MemjsResponse {
  header: { status: number; cas: Buffer }
  val: Buffer
}

const EMPTY = Buffer.alloc(0)

/** A binary-protocol request: the 24-byte header (with CAS), extras, key, value. */
function buildRequest(
  opcode: number,
  key: Buffer,
  extras: Buffer,
  value: Buffer,
  opaque: number,
  cas?: Buffer,
): Buffer {
  const request = Buffer.alloc(24 + extras.length + key.length + value.length)
  request.writeUInt8(0x80, 0)
  request.writeUInt8(opcode, 1)
  request.writeUInt16BE(key.length, 2)
  request.writeUInt8(extras.length, 4)
  request.writeUInt32BE(extras.length + key.length + value.length, 8)
  request.writeUInt32BE(opaque >>> 0, 12)
  if (cas) cas.copy(request, 16, 0, 8)
  extras.copy(request, 24)
  key.copy(request, 24 + extras.length)
  value.copy(request, 24 + extras.length + key.length)
  return request
}

function statusError(command: string, status: number): BackendError {
  return new BackendError(
    `memcached ${command} failed: ${STATUS_NAMES[status] ?? `status 0x${status.toString(16).padStart(4, '0')}`}`,
  )
}

/** The expiry field for a time to live in seconds (0: never; past 30 days, memcached wants a unix time). */
export function expiryField(ttlSeconds: number | undefined): number {
  if (ttlSeconds === undefined) return 0
  const seconds = Math.max(1, Math.ceil(ttlSeconds))
  return seconds <= MAX_RELATIVE_EXPIRY ? seconds : Math.floor(Date.now() / 1000) + seconds
}

/** A lock's value: `<token>:<expiresAtMs>`. */
function parseLock(value: Buffer): { token: string; expiresAt: number } {
  const text = value.toString('latin1')
  const at = text.lastIndexOf(':')
  return at < 0
    ? { token: text, expiresAt: Number.NaN }
    : { token: text.slice(0, at), expiresAt: Number(text.slice(at + 1)) }
}

/**
 * The memcached lock. memcached's own expiry has a granularity of one second, so the holder also writes when its
 * lock runs out (`expiresAtMs`, wall clock): a waiter that finds an expired lock takes it over with a CAS write,
 * so a dead holder blocks others for `lockTimeout`, not up to a second more. (This compares clocks across hosts:
 * keep them in sync, as for any distributed lock with expiry.) Release is a CAS delete of the version that holds
 * our token, so it never frees a lock someone else took over.
 */
class MemcachedMutex implements CacheMutex {
  #token: string | undefined

  constructor(
    private readonly backend: MemcachedBackend,
    private readonly lockKey: string,
  ) {}

  async acquire(wait: boolean): Promise<boolean> {
    const token = randomBytes(12).toString('hex')
    const attempt = () => this.#attempt(token)
    const acquired = wait
      ? await waitForLock(
          attempt,
          { wait: sleep, dispose: () => {} },
          {
            lockTimeoutMs: this.backend.lockTimeoutMs,
            // jittered exponential backoff: 10ms, 20ms, 40ms ... up to lockPollInterval
            nextDelayMs: (round) => jittered(Math.min(this.backend.lockPollIntervalMs, 10 * 2 ** Math.min(round, 16))),
            graceMs: LOCK_GRACE_MS,
          },
        )
      : (await attempt()).acquired
    if (acquired) this.#token = token
    return acquired
  }

  async #attempt(token: string): Promise<LockAttempt> {
    const backend = this.backend
    const value = () => Buffer.from(`${token}:${Date.now() + backend.lockTimeoutMs}`, 'latin1')
    if (await backend.store(OP_ADD, this.lockKey, value(), backend.lockExpirySeconds)) return { acquired: true }
    const current = await backend.getItem(this.lockKey)
    // Released between the two calls: try again at once.
    if (current === null) return { acquired: false, remainingMs: 0 }
    const holder = parseLock(current.value)
    // memjs retried our ADD after a lost answer: the lock is ours.
    if (holder.token === token) return { acquired: true }
    if (!Number.isFinite(holder.expiresAt)) return { acquired: false, remainingMs: undefined }
    const remaining = holder.expiresAt - Date.now()
    if (remaining > 0) return { acquired: false, remainingMs: remaining, holder: holder.token }
    // The holder's time is up (it died, or is too slow): take the lock over, unless someone else just did.
    if (await backend.store(OP_SET, this.lockKey, value(), backend.lockExpirySeconds, current.cas))
      return { acquired: true }
    return { acquired: false, remainingMs: 0 }
  }

  async release(): Promise<void> {
    const token = this.#token
    if (token === undefined) return
    this.#token = undefined
    try {
      const current = await this.backend.getItem(this.lockKey)
      if (current !== null && parseLock(current.value).token === token)
        await this.backend.remove(this.lockKey, current.cas)
    } catch (error) {
      // The lock runs out by itself after lockTimeout.
      this.backend.reportBackground('unlock', error)
    }
  }

  async locked(): Promise<boolean> {
    const current = await this.backend.getItem(this.lockKey)
    if (current === null) return false
    const { expiresAt } = parseLock(current.value)
    return !Number.isFinite(expiresAt) || expiresAt > Date.now()
  }
}

/**
 * Region invalidation marks shared through memcached: `{"hard":ms,"soft":ms}` under one key, max-merged with
 * CAS writes, and re-read at least every `invalidationPollInterval` (jittered; memcached has no pub/sub, so that
 * interval bounds the propagation delay). memcached may evict the key under memory pressure; every process keeps
 * its marks and writes back any that the server lost, at its next poll.
 *
 * Tag marks: one key per tag, `<prefix>corral:tag:<region>:<tag>` (SHA-1 mangled when memcached cannot hold it),
 * holding `"<hardAt>,<softAt>"`, max-merged the same way (ADD when absent, else a CAS write), with an expiry
 * `tagMarkTtlMs` after the mark's latest time (none when values never expire). Each process mirrors the tags it
 * reads (`TagMirror`) and trusts a mirrored mark for `invalidationPollInterval`; at every poll it re-reads, in one
 * batch, the tags read since the previous poll. So another process's tag invalidation is seen within about one
 * `invalidationPollInterval`, a hit on a value whose tags are mirrored costs its one GET, and unknown tags cost
 * one more round trip (their GETs pipelined).
 */
class MemcachedInvalidator implements RegionInvalidator {
  readonly #local = new LocalInvalidator()
  readonly #tags: TagMirror
  readonly #key: string
  readonly #tagPrefix: string
  readonly #poller: Poller
  readonly loaded: Promise<void>
  #stopped = false

  constructor(
    private readonly backend: MemcachedBackend,
    regionName: string,
  ) {
    this.#key = backend.keyFor(`corral:invalidation:${regionName}`)
    this.#tagPrefix = `corral:tag:${regionName}:`
    this.#tags = new TagMirror(backend.invalidationPollIntervalMs, () => backend.tagMarkTtlMs)
    this.loaded = this.refresh()
    this.#poller = new Poller(backend.invalidationPollIntervalMs, () => this.refresh())
  }

  current(): InvalidationState {
    return this.#local.current()
  }

  async invalidate(hard: boolean, at: number): Promise<void> {
    this.#local.apply(hard, at)
    await this.#merge(this.#local.current())
  }

  tagMarks(tag: string): InvalidationState | undefined {
    return this.#tags.marks(tag)
  }

  async invalidateTags(tags: readonly string[], hard: boolean, at: number): Promise<void> {
    for (const tag of tags) this.#tags.applyLocal(tag, hard, at)
    const marks = hard ? { hardAt: at, softAt: 0 } : { hardAt: 0, softAt: at }
    const results = await Promise.allSettled(tags.map((tag) => this.#mergeTag(tag, marks)))
    const failed = tags.filter((_, i) => results[i]!.status === 'rejected')
    if (failed.length > 0) {
      // Kept here, and written back at a later poll once memcached answers.
      this.#tags.markUnsynced(failed)
      throw (results.find((result) => result.status === 'rejected') as PromiseRejectedResult).reason
    }
  }

  loadTags(tags: readonly string[]): Promise<void> {
    return this.#tags.load(tags, (missing) => this.#fetchTags(missing))
  }

  /** Re-reads the marks; never throws (failures are reported, rate-limited). */
  async refresh(): Promise<void> {
    if (this.#stopped) return
    try {
      const item = await this.backend.getItem(this.#key)
      const remote = item === null ? { hardAt: 0, softAt: 0 } : parseMarks(item.value)
      this.#local.apply(true, remote.hardAt)
      this.#local.apply(false, remote.softAt)
      const local = this.#local.current()
      if (local.hardAt > remote.hardAt || local.softAt > remote.softAt) await this.#merge(local)
    } catch (error) {
      this.backend.reportBackground('invalidationRefresh', error)
    }
    await this.#refreshTags()
  }

  /** Writes back marks memcached lacks, then re-reads the tags read since the last poll. Never throws. */
  async #refreshTags(): Promise<void> {
    const unsynced = this.#tags.takeUnsynced()
    const results = await Promise.allSettled(unsynced.map(([tag, marks]) => this.#mergeTag(tag, marks)))
    const failed = unsynced.filter((_, i) => results[i]!.status === 'rejected').map(([tag]) => tag)
    if (failed.length > 0) {
      this.#tags.markUnsynced(failed)
      this.backend.reportBackground(
        'tagRefresh',
        (results.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason,
      )
    }
    try {
      for (const chunk of chunks(this.#tags.takeUsed())) await this.#fetchTags(chunk)
    } catch (error) {
      this.backend.reportBackground('tagRefresh', error)
    }
  }

  #tagKey(tag: string): string {
    return this.backend.keyFor(this.#tagPrefix + tag)
  }

  /** GETs of every tag, written back to back (one round trip); absent tags are recorded as not invalidated. */
  async #fetchTags(tags: readonly string[]): Promise<void> {
    if (this.#stopped || tags.length === 0) return
    const items = await Promise.all(tags.map((tag) => this.backend.getItem(this.#tagKey(tag))))
    tags.forEach((tag, i) => {
      const item = items[i]
      this.#tags.record(tag, item ? parseTagMarks(item.value.toString('latin1')) : NO_MARKS)
    })
  }

  /** Max-merges `marks` into the tag's key: ADD when absent, else a CAS write, retried on contention. */
  async #mergeTag(tag: string, marks: InvalidationState): Promise<void> {
    const key = this.#tagKey(tag)
    for (let attempt = 0; attempt < 20; attempt++) {
      const item = await this.backend.getItem(key)
      const remote = item === null ? NO_MARKS : parseTagMarks(item.value.toString('latin1'))
      const merged = {
        hardAt: Math.max(remote.hardAt, marks.hardAt),
        softAt: Math.max(remote.softAt, marks.softAt),
      }
      if (item !== null && merged.hardAt === remote.hardAt && merged.softAt === remote.softAt) {
        this.#tags.record(tag, remote)
        return
      }
      const value = Buffer.from(formatTagMarks(merged), 'latin1')
      const expiry = this.#tagExpiry(merged)
      const stored =
        item === null
          ? await this.backend.store(OP_ADD, key, value, expiry)
          : await this.backend.store(OP_SET, key, value, expiry, item.cas)
      if (stored) {
        this.#tags.record(tag, merged)
        return
      }
      await sleep(jittered(10))
    }
    throw new BackendError('memcached backend: could not record the tag invalidation (too much contention)')
  }

  /** The expiry field of a tag mark: `tagMarkTtlMs` after its latest time (0, never, without one). */
  #tagExpiry(marks: InvalidationState): number {
    const ttl = this.backend.tagMarkTtlMs
    if (ttl === undefined) return 0
    return expiryField(Math.max(1, (Math.max(marks.hardAt, marks.softAt) + ttl - Date.now()) / 1000))
  }

  /** Max-merges `marks` into the stored ones: ADD when absent, else a CAS write, retried on contention. */
  async #merge(marks: InvalidationState): Promise<void> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const item = await this.backend.getItem(this.#key)
      if (item === null) {
        if (await this.backend.store(OP_ADD, this.#key, formatMarks(marks), 0)) return
        continue
      }
      const remote = parseMarks(item.value)
      this.#local.apply(true, remote.hardAt)
      this.#local.apply(false, remote.softAt)
      const merged = this.#local.current()
      if (merged.hardAt === remote.hardAt && merged.softAt === remote.softAt) return
      if (await this.backend.store(OP_SET, this.#key, formatMarks(merged), 0, item.cas)) return
      await sleep(jittered(10))
    }
    throw new BackendError('memcached backend: could not record the invalidation (too much contention)')
  }

  stop(): void {
    this.#stopped = true
    this.#poller.stop()
  }

  async close(): Promise<void> {
    this.stop()
    this.backend.forgetInvalidator(this)
  }
}

function formatMarks(marks: InvalidationState): Buffer {
  return Buffer.from(JSON.stringify({ hard: marks.hardAt, soft: marks.softAt }), 'utf8')
}

function parseMarks(value: Buffer): InvalidationState {
  try {
    const parsed = JSON.parse(value.toString('utf8')) as { hard?: unknown; soft?: unknown }
    const hard = Number(parsed?.hard)
    const soft = Number(parsed?.soft)
    return { hardAt: Number.isFinite(hard) ? hard : 0, softAt: Number.isFinite(soft) ? soft : 0 }
  } catch {
    return { hardAt: 0, softAt: 0 }
  }
}
