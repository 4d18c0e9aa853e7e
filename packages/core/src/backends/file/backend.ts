import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
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
import type { BackendContext, CacheBackend, CacheMutex, FencedStore, RegionInvalidator } from '../api.js'
import { readArguments } from '../arguments.js'
import {
  ErrorThrottle,
  durationMs,
  loadOptionalPeer,
  serverTtlSeconds,
  ttlMilliseconds,
} from '../shared/distributed.js'
import { InvalidatorSet } from '../shared/mirrored-invalidator.js'
import { TAG_MARK_GRACE_MS } from '../shared/tag-marks.js'
import { FileInvalidator } from './invalidator.js'
import { FileMutex } from './mutex.js'
import { BoundsMismatch, FileStore, KIND_VALUE, type LockTry, type StoredRecord } from './store.js'
import type { Signals } from './signals.js'

type Lmdb = typeof import('lmdb')

export interface FileBackendOptions {
  /** The directory of the store (created if missing). Every process that names the same directory shares it. */
  path: string
  /** The most entries kept; beyond it the least recently written are evicted. Default 100000. */
  maxEntries?: number
  /**
   * The most bytes of keys and values kept; beyond it the least recently written are evicted. The file is larger
   * (LMDB's pages and free space, typically 1.5 to 2 times). Default 256 MiB.
   */
  maxBytes?: number
  /** Take a lock around regeneration, so one process of the machine regenerates a key at a time. Default true. */
  distributedLock?: boolean
  /** How long a lock lives (a dead holder blocks others at most this long) and a waiter waits. Default 30s. */
  lockTimeout?: Duration
  /** Waiters are woken by the holder's release; this is the fallback poll, should a wake-up be lost. Default 100ms. */
  lockPollInterval?: Duration
  /** How long values are kept; default 2 × the region's expiration + 60s; none without one; `-1`: none. */
  fileExpirationTime?: Duration | -1
  /**
   * How often invalidation marks are re-read, should a change notification be lost. Changes reach the other
   * processes at once otherwise. Default 1s.
   */
  invalidationPollInterval?: Duration
}

/** The default bounds: as many entries as the memory backend keeps, and a quarter of a gigabyte. */
const DEFAULT_MAX_ENTRIES = 100_000
const DEFAULT_MAX_BYTES = 256 * 1024 * 1024

/**
 * Network file systems, by `statfs` type (Linux): LMDB's locks and shared memory map are not coherent across the
 * hosts of such a file system, so the lock would not be exclusive and readers could see torn pages.
 */
const NETWORK_FILE_SYSTEMS = new Map<number, string>([
  [0x6969, 'NFS'],
  [0x517b, 'SMB'],
  [0xff534d42, 'CIFS'],
  [0xfe534d42, 'SMB2'],
  [0x00c36400, 'Ceph'],
  [0x01021997, '9P'],
  [0x5346414f, 'AFS'],
  [0x47504653, 'GPFS'],
  [0x0bd00bd0, 'Lustre'],
])

/**
 * A backend for the processes of one machine: values persist in a directory, every process that opens the same
 * directory shares them, and the dogpile lock spans those processes, with no server.
 *
 * The store is LMDB (through the `lmdb` package, an optional peer dependency): a hit is a lookup in a memory-mapped
 * file (a few microseconds, no system call); a write, a lock or a release is one write transaction (about 20 µs).
 * See `store.ts` for the layout and the size bound, `mutex.ts` for the lock and `invalidator.ts` for invalidation.
 */
export class FileBackend implements CacheBackend {
  readonly name = 'file'
  /** The directory given as `path`, resolved. */
  readonly path: string
  readonly maxEntries: number
  readonly maxBytes: number
  readonly distributedLock: boolean
  readonly lockTimeoutMs: number
  readonly lockPollIntervalMs: number
  readonly invalidationPollIntervalMs: number

  readonly #store: FileStore
  readonly #ttlArgument: unknown
  #ttlMs: number | undefined
  #serializer: Serializer = jsonSerializer
  readonly #errors = new ErrorThrottle()
  readonly #invalidators = new InvalidatorSet<FileInvalidator>()
  readonly #onStoreError = (error: unknown) => this.#errors.report('store', error)
  #closed = false

  constructor(options: FileBackendOptions) {
    const args = readArguments('file', (options ?? {}) as unknown as Record<string, unknown>, {
      path: 'string',
      maxEntries: 'positiveInteger',
      maxBytes: 'positiveInteger',
      distributedLock: 'boolean',
      lockTimeout: 'duration',
      lockPollInterval: 'duration',
      fileExpirationTime: 'duration',
      invalidationPollInterval: 'duration',
    })
    if (typeof args.path !== 'string' || args.path.trim() === '')
      throw new ValidationError(
        `file backend: argument "path" (the directory of the store) is required; got ${describeValue(args.path)}`,
      )
    this.path = path.resolve(args.path)
    this.maxEntries = (args.maxEntries as number | undefined) ?? DEFAULT_MAX_ENTRIES
    this.maxBytes = (args.maxBytes as number | undefined) ?? DEFAULT_MAX_BYTES
    this.distributedLock = (args.distributedLock as boolean | undefined) ?? true
    this.lockTimeoutMs = durationMs('file', 'lockTimeout', args.lockTimeout, 30)
    this.lockPollIntervalMs = durationMs('file', 'lockPollInterval', args.lockPollInterval, 0.1)
    this.invalidationPollIntervalMs = durationMs('file', 'invalidationPollInterval', args.invalidationPollInterval, 1)
    this.#ttlArgument = args.fileExpirationTime
    this.#ttlMs = ttlMilliseconds(serverTtlSeconds('file', 'fileExpirationTime', this.#ttlArgument, undefined))

    prepareDirectory(this.path)
    const lmdb = loadOptionalPeer<Lmdb>('file', 'lmdb')
    try {
      this.#store = FileStore.acquire(
        lmdb,
        this.path,
        { maxEntries: this.maxEntries, maxBytes: this.maxBytes },
        this.#onStoreError,
      )
    } catch (error) {
      if (error instanceof BoundsMismatch)
        throw new ValidationError(
          `file backend: ${this.path} is already open in this process with maxEntries ${error.bounds.maxEntries} and maxBytes ${error.bounds.maxBytes}; give every backend on one path the same bounds`,
        )
      throw new ValidationError(
        `file backend: cannot open the store in ${this.path}: ${(error as Error)?.message ?? error} (delete the directory if another program wrote it)`,
        { cause: error },
      )
    }
  }

  attach(context: BackendContext): void {
    this.#serializer = context.serializer
    this.#errors.context = context
    this.#ttlMs = ttlMilliseconds(
      serverTtlSeconds(
        'file',
        'fileExpirationTime',
        this.#ttlArgument,
        context.expirationTime,
        context.failSafeMaxStaleAge,
      ),
    )
  }

  /** How long values are kept, in milliseconds (`undefined`: until evicted). */
  get storeTtlMs(): number | undefined {
    return this.#ttlMs
  }

  /** How long a tag mark lives after its latest time: as long as the values it can invalidate, plus a grace. */
  get tagMarkTtlMs(): number | undefined {
    return this.#ttlMs === undefined ? undefined : this.#ttlMs + TAG_MARK_GRACE_MS
  }

  /** The LMDB directory of this boot of the machine, inside `path`. */
  get storeDirectory(): string {
    return this.#store.directory
  }

  /** @internal */
  get store(): FileStore {
    if (this.#closed) throw new BackendError('file backend: closed')
    return this.#store
  }

  /** @internal */
  get signals(): Signals {
    return this.#store.signals
  }

  // ---------------------------------------------------------------- values

  getSync(key: string): CachedValue | NoValue {
    try {
      return this.decode(this.store.read(key))
    } catch (error) {
      // Reads never fail: the region regenerates (getSync has no caller to report to).
      this.#errors.report('get', error)
      return NO_VALUE
    }
  }

  async get(key: string): Promise<CachedValue | NoValue> {
    return this.decode(this.store.read(key))
  }

  async getMulti(keys: readonly string[]): Promise<Array<CachedValue | NoValue>> {
    const store = this.store
    const now = Date.now()
    return keys.map((key) => this.decode(store.read(key, now)))
  }

  async set(key: string, value: CachedValue): Promise<void> {
    const body = encodeCachedValue(value, this.#serializer)
    this.store.writeMany([{ key, kind: KIND_VALUE, expiresAt: this.#expiresAt(this.#ttlMs), body }])
  }

  async setIfNotNewer(key: string, value: CachedValue, since: number): Promise<boolean> {
    const body = encodeCachedValue(value, this.#serializer)
    return this.store.writeIfNotNewer(key, this.#expiresAt(this.#ttlMs), body, since)
  }

  async setMulti(entries: ReadonlyArray<readonly [string, CachedValue]>): Promise<void> {
    this.#setMany(entries, this.#ttlMs)
  }

  async setMultiWithTtl(entries: ReadonlyArray<readonly [string, CachedValue]>, ttlSeconds: number): Promise<void> {
    this.#setMany(entries, ttlMilliseconds(ttlSeconds))
  }

  #setMany(entries: ReadonlyArray<readonly [string, CachedValue]>, ttlMs: number | undefined): void {
    if (entries.length === 0) return
    // Encode everything first, so that one value that cannot be serialized stores nothing.
    const expiresAt = this.#expiresAt(ttlMs)
    const writes = entries.map(([key, value]) => ({
      key,
      kind: KIND_VALUE,
      expiresAt,
      body: encodeCachedValue(value, this.#serializer),
    }))
    this.store.writeMany(writes)
  }

  /** Adds `by` to the counter at `key` in one write transaction; `by = 0` reads it. */
  async increment(key: string, by: number, ttlSeconds?: number): Promise<number> {
    if (!Number.isSafeInteger(by))
      throw new ValidationError(`file backend: increment by a whole number; got ${describeValue(by)}`)
    return this.store.increment(key, by, this.#expiresAt(ttlMilliseconds(ttlSeconds)))
  }

  async delete(key: string): Promise<void> {
    this.store.removeMany([key])
  }

  async deleteMulti(keys: readonly string[]): Promise<void> {
    this.store.removeMany(keys)
  }

  count(): number {
    try {
      return this.#closed ? 0 : this.#store.count()
    } catch {
      return 0
    }
  }

  /**
   * What the size bound holds now, across every process of the machine: entries and bytes (keys and values, not
   * the file), and how many entries it has evicted since the store was created.
   */
  stats(): { entries: number; bytes: number; evictions: number } {
    const { count, bytes, evictions } = this.store.stats()
    return { entries: count, bytes, evictions }
  }

  /** @internal a stored record as the region sees it */
  decode(record: StoredRecord | undefined): CachedValue | NoValue {
    if (record === undefined || record.kind !== KIND_VALUE) return NO_VALUE
    return decodeCachedValue(record.body, this.#serializer)
  }

  #expiresAt(ttlMs: number | undefined): number {
    return ttlMs === undefined ? 0 : Date.now() + ttlMs
  }

  // ---------------------------------------------------------------- lock

  getMutex(key: string): CacheMutex | undefined {
    if (!this.distributedLock) return undefined
    return new FileMutex(this, key)
  }

  /** @internal */
  lockAttempt(key: string, token: string, traceparent: string | undefined, producedSince: number | undefined): LockTry {
    return this.store.tryLock(key, token, this.lockTimeoutMs, traceparent, producedSince)
  }

  /** @internal */
  lockRelease(key: string, token: string, store: FencedStore | undefined): { released: boolean; stored: boolean } {
    const fenced =
      store === undefined
        ? undefined
        : {
            expiresAt: this.#expiresAt(this.#ttlMs),
            body: encodeCachedValue(store.value, this.#serializer),
            since: store.since,
          }
    return this.store.unlock(key, token, fenced)
  }

  /** @internal */
  lockHeld(key: string): boolean {
    return this.store.lockHeld(key)
  }

  /** @internal the signal file that wakes the waiters of a key's lock */
  lockSignal(key: string): string {
    return `l-${shortHash(key)}`
  }

  /** @internal the signal file of a region's marks (`r`) or tag marks (`t`) */
  marksSignal(kind: 'r' | 't', regionName: string): string {
    return `${kind}-${shortHash(regionName)}`
  }

  // ---------------------------------------------------------------- invalidation

  createInvalidator(regionName: string): RegionInvalidator {
    return this.#invalidators.add(new FileInvalidator(this, regionName))
  }

  /** @internal */
  forgetInvalidator(invalidator: FileInvalidator): void {
    this.#invalidators.forget(invalidator)
  }

  /** @internal */
  reportBackground(operation: string, error: unknown): void {
    this.#errors.report(operation, error)
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#invalidators.stopAll()
    await this.#store.release(this.#onStoreError)
  }
}

/** Creates the directory if needed, and refuses what cannot hold the store. */
function prepareDirectory(directory: string): void {
  try {
    if (fs.existsSync(directory) && !fs.statSync(directory).isDirectory())
      throw new ValidationError(`file backend: "path" must be a directory; ${directory} is a file`)
    fs.mkdirSync(directory, { recursive: true })
  } catch (error) {
    if (error instanceof ValidationError) throw error
    throw new ValidationError(
      `file backend: cannot create the directory "${directory}": ${(error as Error)?.message ?? error}`,
      { cause: error },
    )
  }
  try {
    fs.accessSync(directory, fs.constants.R_OK | fs.constants.W_OK)
  } catch (error) {
    throw new ValidationError(`file backend: the directory "${directory}" is not writable by this process`, {
      cause: error,
    })
  }
  let type: number | undefined
  try {
    type = fs.statfsSync(directory).type
  } catch {
    // statfs is not available everywhere: nothing to check then
  }
  const network = type === undefined ? undefined : NETWORK_FILE_SYSTEMS.get(type)
  if (network !== undefined)
    throw new ValidationError(
      `file backend: ${directory} is on a network file system (${network}), which the file backend does not support: its lock and its memory-mapped file are only coherent between the processes of one machine (use the redis backend to share a cache between machines)`,
    )
}

function shortHash(text: string): string {
  return createHash('sha1').update(text).digest('hex').slice(0, 24)
}
