import { createHash } from 'node:crypto'
import type { Client as MemjsClient } from 'memjs'
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
import { ErrorThrottle, durationMs, loadOptionalPeer, serverTtlSeconds } from '../shared/distributed.js'
import { InvalidatorSet } from '../shared/mirrored-invalidator.js'
import { TAG_MARK_GRACE_MS } from '../shared/tag-marks.js'
import { MemcachedInvalidator } from './invalidator.js'
import { MemcachedMutex } from './mutex.js'
import {
  EMPTY,
  MAX_KEY_BYTES,
  OP_ADD,
  OP_DELETE,
  OP_GET,
  OP_INCREMENT,
  OP_SET,
  OP_TOUCH,
  STATUS_EXISTS,
  STATUS_NOT_FOUND,
  STATUS_NOT_STORED,
  STATUS_OK,
  expiryField,
  request,
  requestBoundMs,
  statusError,
  unsafeKey,
  type Item,
  type Response,
} from './protocol.js'

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

/** Keys that look like a mangled key are mangled too, so that no two keys can share a stored key. */
const MANGLED = /^sha1:[0-9a-f]{40}$/

/**
 * A memcached backend on memjs. Values are `encodeCachedValue` bytes with a server-side expiry derived from the
 * region's. Keys memcached cannot hold (over 250 bytes, whitespace or control characters) are replaced by
 * `keyPrefix + 'sha1:' + sha1(key)` inside the backend, whatever the region's `keyMangler` says.
 *
 * Commands go through memjs's `perform` with binary-protocol requests built in `protocol.ts`, because memjs's own
 * methods do not expose CAS: the lock uses it for a true compare-and-delete and to take over an expired lock
 * atomically.
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
  readonly #invalidators = new InvalidatorSet<MemcachedInvalidator>()
  /** how long a request may go unanswered before it is taken as lost (see `request`) */
  readonly #requestBoundMs: number
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
    this.#requestBoundMs = requestBoundMs(this.client)
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
    if (this.#invalidators.loading) await this.#invalidators.loaded()
    const item = await this.getItem(this.keyFor(key))
    return item === null ? NO_VALUE : decodeCachedValue(item.value, this.#serializer)
  }

  async getMulti(keys: readonly string[]): Promise<Array<CachedValue | NoValue>> {
    if (keys.length === 0) return []
    if (this.#invalidators.loading) await this.#invalidators.loaded()
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
    return new MemcachedMutex(this, key, this.keyFor(`corral:lock:${key}`))
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
    // The first reads wait for its marks to be loaded, so nothing invalidated is served at startup.
    return this.#invalidators.add(new MemcachedInvalidator(this, regionName))
  }

  /** @internal */
  forgetInvalidator(invalidator: MemcachedInvalidator): void {
    this.#invalidators.forget(invalidator)
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

  #request(opcode: number, key: string, extras: Buffer, value: Buffer, cas?: Buffer): Promise<Response> {
    if (this.#closed) return Promise.reject(new BackendError('memcached backend: closed'))
    return request(this.client, opcode, key, extras, value, cas, this.#requestBoundMs)
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#invalidators.stopAll()
    if (this.#ownsClient) this.client.close()
  }
}
