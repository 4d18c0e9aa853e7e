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
import { ErrorThrottle, createdAfter, durationMs, loadOptionalPeer, serverTtlSeconds } from '../shared/distributed.js'
import { InvalidatorSet } from '../shared/mirrored-invalidator.js'
import { TAG_MARK_GRACE_MS } from '../shared/tag-marks.js'
import { AbandonedLocks } from './abandoned-locks.js'
import { FENCED_WRITE_ATTEMPTS } from './fence.js'
import { MemcachedInvalidator } from './invalidator.js'
import { MemcachedMutex } from './mutex.js'
import {
  EMPTY,
  MAX_KEY_BYTES,
  OP_ADD,
  OP_INCREMENT,
  OP_SET,
  OP_TOUCH,
  STATUS_NOT_STORED,
  STATUS_OK,
  deleteCommand,
  deletedBy,
  expiryField,
  getCommand,
  itemOf,
  statusError,
  storeCommand,
  storedBy,
  unsafeKey,
  type Command,
  type Item,
  type Response,
} from './protocol.js'
import { MemcachedTransport } from './transport.js'

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
  /**
   * The longest any call to memcached may take (connecting included), enforced by Corral whatever memjs does; a
   * connection that misses it is replaced. Default 0.5s, or the `timeout` of the memjs `client` you pass.
   */
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
 * Commands are binary-protocol requests built in `protocol.ts` and written on memjs's connections by
 * `MemcachedTransport`, which bounds every call by `timeout` and replaces a connection that fails one; memjs's own
 * methods expose neither CAS (the lock, the fenced writes and the invalidation marks need it) nor pipelining.
 *
 * Writes that must not replace a newer value (`setIfNotNewer`, and a lock holder's store) read the stored value's
 * creation time from its header and write with CAS, so nothing written in between is overwritten.
 *
 * The distributed lock (`MemcachedMutex`) is an `add` of `<token>[:<traceparent>]:<expiresAtMs>` under
 * `<prefix>corral:lock:<key>`; waiters poll with jittered exponential backoff (memcached has no notifications).
 * Invalidation marks live under
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
  /** @internal lock attempts that got no answer (see `AbandonedLocks`) */
  readonly abandonedLocks = new AbandonedLocks(this)
  /** every command goes through it: Corral's deadline, connection replacement */
  readonly #transport: MemcachedTransport
  /** the longest a call may take (the `timeout` argument) */
  readonly timeoutMs: number
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
    this.#ttlArgument = args.memcachedExpireTime
    this.#ttlSeconds = serverTtlSeconds('memcached', 'memcachedExpireTime', this.#ttlArgument, undefined)

    if (args.client !== undefined) {
      if (args.servers !== undefined)
        throw new ValidationError(
          'memcached backend: "client" is a configured client; do not combine it with "servers"',
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
      this.timeoutMs = durationMs('memcached', 'timeout', args.timeout, memjsTimeoutSeconds(client))
    } else {
      this.timeoutMs = durationMs('memcached', 'timeout', args.timeout, 0.5)
      const memjs = loadOptionalPeer<Memjs>('memcached', 'memjs')
      this.client = memjs.Client.create((args.servers as string | undefined) ?? '127.0.0.1:11211', {
        // Corral's deadline decides (see MemcachedTransport); memjs's own timers, only a backstop for calls made
        // on `backend.client` directly, are set past it so they never fire first.
        timeout: (2 * this.timeoutMs) / 1000,
        conntimeout: (2 * this.timeoutMs) / 1000,
        retries: 2,
        retry_delay: 0,
        failover: false,
        keepAlive: true,
        // Failures reach the caller (and the region's backendError events); memjs would also print them.
        logger: { log: () => {} },
      })
      this.#ownsClient = true
    }
    this.#transport = new MemcachedTransport(this.client, this.timeoutMs)
  }

  attach(context: BackendContext): void {
    this.#serializer = context.serializer
    this.#errors.context = context
    this.#ttlSeconds = serverTtlSeconds(
      'memcached',
      'memcachedExpireTime',
      this.#ttlArgument,
      context.expirationTime,
      context.failSafeMaxStaleAge,
    )
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
    return item === null ? NO_VALUE : this.decode(item.value)
  }

  async getMulti(keys: readonly string[]): Promise<Array<CachedValue | NoValue>> {
    if (keys.length === 0) return []
    if (this.#invalidators.loading) await this.#invalidators.loaded()
    // memjs 1.x has no multi-get: the GETs are written together, one round trip per server.
    const responses = await this.send(keys.map((key) => getCommand(this.keyFor(key))))
    return responses.map((response) => {
      const item = itemOf(response)
      return item === null ? NO_VALUE : this.decode(item.value)
    })
  }

  async set(key: string, value: CachedValue): Promise<void> {
    const data = this.encode(value)
    await this.store(OP_SET, this.keyFor(key), data, this.#expiry())
  }

  async setMulti(entries: ReadonlyArray<readonly [string, CachedValue]>): Promise<void> {
    await this.#setAll(entries, this.#expiry())
  }

  async setMultiWithTtl(entries: ReadonlyArray<readonly [string, CachedValue]>, ttlSeconds: number): Promise<void> {
    await this.#setAll(entries, expiryField(ttlSeconds))
  }

  async #setAll(entries: ReadonlyArray<readonly [string, CachedValue]>, expiry: number): Promise<void> {
    if (entries.length === 0) return
    // Encode everything first, so that one value that cannot be serialized stores nothing.
    const commands = entries.map(([key, value]) => storeCommand(OP_SET, this.keyFor(key), this.encode(value), expiry))
    const responses = await this.send(commands)
    responses.forEach((response, i) => storedBy(response, commands[i]!))
  }

  /**
   * Stores `value` unless the value under `key` was created after `since`: a GET reads the stored value's
   * creation time (from its header), then a CAS write (an ADD when there was none) replaces exactly the version
   * that was read, so a value written in between is never overwritten; a conflict reads again.
   */
  async setIfNotNewer(key: string, value: CachedValue, since: number): Promise<boolean> {
    const full = this.keyFor(key)
    const data = this.encode(value)
    return this.storeIfNotNewer(full, data, since, await this.getItem(full))
  }

  /**
   * Adds `by` (≥ 0) to the counter at `key`: INCR, creating it at `by` when absent, then TOUCH, written together
   * (one round trip), so that the counter lives `ttlSeconds` after its last increment, not its first. `by = 0`
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
    for (let attempt = 1; ; attempt++) {
      const [response] = await this.send([
        { opcode: OP_INCREMENT, key: full, extras, value: EMPTY },
        { opcode: OP_TOUCH, key: full, extras: expiryExtras, value: EMPTY },
      ])
      if (response!.status === STATUS_OK) return Number(response!.value.readBigUInt64BE(0))
      // memcached creates a missing counter with an add: when another connection's first increment created it at
      // the same moment, this one is answered "not stored". The counter exists now, so incrementing again works.
      if (response!.status !== STATUS_NOT_STORED || attempt === 3) throw statusError(OP_INCREMENT, response!.status)
    }
  }

  async delete(key: string): Promise<void> {
    await this.remove(this.keyFor(key))
  }

  async deleteMulti(keys: readonly string[]): Promise<void> {
    if (keys.length === 0) return
    const responses = await this.send(keys.map((key) => deleteCommand(this.keyFor(key))))
    responses.forEach(deletedBy)
  }

  // ---------------------------------------------------------------- lock

  getMutex(key: string): CacheMutex | undefined {
    if (!this.distributedLock) return undefined
    return new MemcachedMutex(this, this.keyFor(key), this.keyFor(`corral:lock:${key}`))
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

  // ---------------------------------------------------------------- fenced writes

  /**
   * @internal Stores `data` (encoded) under `full` unless the value there was created after `since`. `item` is the
   * stored item as last read (`null`: absent). Each write is a CAS on that version (an ADD when absent), so a value
   * written after the read makes it fail instead of being overwritten; then it reads again. Resolves to whether
   * `data` is stored.
   */
  async storeIfNotNewer(full: string, data: Buffer, since: number, item: Item | null): Promise<boolean> {
    const expiry = this.#expiry()
    for (let attempt = 0; attempt < FENCED_WRITE_ATTEMPTS; attempt++) {
      // A newer value wins; if it is ours (a write retried after its answer was lost), it is stored.
      if (item !== null && createdAfter(item.value, since)) return item.value.equals(data)
      const stored =
        item === null
          ? await this.store(OP_ADD, full, data, expiry)
          : await this.store(OP_SET, full, data, expiry, item.cas)
      if (stored) return true
      item = await this.getItem(full)
    }
    return false
  }

  /** @internal The command that writes `data` over exactly the version `item` (ADD when `null`). */
  fencedStoreCommand(full: string, data: Buffer, item: Item | null): Command {
    return item === null
      ? storeCommand(OP_ADD, full, data, this.#expiry())
      : storeCommand(OP_SET, full, data, this.#expiry(), item.cas)
  }

  // ---------------------------------------------------------------- binary protocol

  /** @internal Sends commands together (one round trip per server), bounded by `timeout`; answers in order. */
  send(commands: readonly Command[]): Promise<Response[]> {
    if (this.#closed) return Promise.reject(new BackendError('memcached backend: closed'))
    return this.#transport.send(commands)
  }

  /** @internal The region's encoding of a value (throws `SerializationError`). */
  encode(value: CachedValue): Buffer {
    return encodeCachedValue(value, this.#serializer)
  }

  /** @internal A stored value, or `NO_VALUE` for bytes that are not one. */
  decode(data: Buffer): CachedValue | NoValue {
    return decodeCachedValue(data, this.#serializer)
  }

  /** @internal GET with the item's CAS; `null` when absent */
  async getItem(key: string): Promise<Item | null> {
    const [response] = await this.send([getCommand(key)])
    return itemOf(response!)
  }

  /**
   * @internal SET or ADD (with `cas`: only if the item is still that version). False when the condition failed
   * (ADD of an existing key, CAS mismatch, item gone).
   */
  async store(opcode: number, key: string, value: Buffer, expiry: number, cas?: Buffer): Promise<boolean> {
    const command = storeCommand(opcode, key, value, expiry, cas)
    const [response] = await this.send([command])
    return storedBy(response!, command)
  }

  /** @internal DELETE (with `cas`: only if the item is still that version); false when nothing was deleted */
  async remove(key: string, cas?: Buffer): Promise<boolean> {
    const [response] = await this.send([deleteCommand(key, cas)])
    return deletedBy(response!)
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#invalidators.stopAll()
    this.abandonedLocks.stop()
    // Our own connections are torn down (what waits on them fails at once); a client you passed is left as it is.
    this.#transport.close(this.#ownsClient)
    if (this.#ownsClient) this.client.close()
  }
}

/** The `timeout` of a memjs client's servers, in seconds (memjs's default 0.5 s). */
function memjsTimeoutSeconds(client: MemjsClient): number {
  const servers = (client as unknown as { servers?: Array<{ options?: { timeout?: unknown } }> }).servers
  const timeout = servers?.[0]?.options?.timeout
  return typeof timeout === 'number' && timeout > 0 ? timeout : 0.5
}
