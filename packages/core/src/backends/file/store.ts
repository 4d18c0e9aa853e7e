/**
 * The file backend's store: an LMDB environment in a directory, shared by every process of the machine that opens
 * the same directory. LMDB maps the file into memory (a read is a lookup in shared pages, no system call), lets one
 * writer at a time commit a transaction atomically (a process killed in the middle of one leaves the last committed
 * state; the writer lock is a robust mutex that the next writer recovers), and lets a transaction read and write
 * several tables at once: the lock, the value and the bookkeeping of the size bound change together or not at all.
 *
 * Layout of `<path>`:
 *
 *     <path>/corral-file-v<STORE_FORMAT>/<boot id>/data.mdb, lock.mdb   the LMDB environment
 *     <path>/corral-file-v<STORE_FORMAT>/<boot id>/signals/             wake-ups between processes (see Signals)
 *
 * Commits are not flushed to disk one by one (LMDB's `noSync`): a commit costs ~20 µs instead of milliseconds of
 * fsync, and a process crash loses nothing (its writes are in the kernel's page cache). A machine crash could leave
 * such a file torn, so a store belongs to one boot of the machine: after a reboot the processes open a new,
 * empty directory and remove the ones of earlier boots. Another format version lives in another directory, so it
 * reads as misses.
 *
 * Tables (LMDB named databases):
 * - `values`: key → record (`RECORD_MAGIC`, format, kind, expiry, write sequence, then the body: a value's
 *   `encodeCachedValue` bytes or a counter's decimal digits). A record without the magic (written by another
 *   program) reads as a miss.
 * - `order`: write sequence → key, oldest first: the size bound evicts from its head (least recently written).
 * - `locks`: key → `{"t": token, "e": expires at (epoch ms), "p": traceparent}`.
 * - `marks`: region and tag invalidation marks.
 * - `meta`: entry count, bytes, the last write sequence and the evictions, updated in every write transaction.
 */
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { Database, RootDatabase } from 'lmdb'
import { storedCreationTime } from '../../cached-value.js'
import { NOT_INVALIDATED } from '../../invalidation.js'
import type { InvalidationState } from '../api.js'
import { createdAfter } from '../shared/distributed.js'
import { Signals } from './signals.js'

type Lmdb = typeof import('lmdb')

/** The version of the store's layout: another version uses another directory. */
export const STORE_FORMAT = 1

/** 'CF': a record this backend wrote. */
const RECORD_MAGIC_0 = 0x43
const RECORD_MAGIC_1 = 0x46
/** magic (2), format (1), kind (1), expiresAt (float64), write sequence (float64) */
const HEADER_BYTES = 20
export const KIND_VALUE = 0x76 // 'v'
const KIND_COUNTER = 0x6e // 'n'

/** Keys longer than this (in UTF-8 bytes) are stored as a SHA-1 (LMDB keys are at most 1978 bytes). */
const MAX_KEY_BYTES = 1024
/** Keys that look like a hashed key are hashed too, so that no two keys can share a stored key. */
const HASHED = /^sha1:[0-9a-f]{40}$/

/** How often each process sweeps expired entries, locks and tag marks, and how many it looks at per table. */
const SWEEP_INTERVAL_MS = 10_000
const SWEEP_BATCH = 2000

/** A record read from the store. */
export interface StoredRecord {
  readonly kind: number
  /** epoch ms; 0: never */
  readonly expiresAt: number
  /** the value's bytes (a copy) */
  readonly body: Buffer
}

/** One write of `writeMany`. */
export interface RecordWrite {
  readonly key: string
  readonly kind: number
  readonly expiresAt: number
  readonly body: Uint8Array
}

/** What an attempt to take a lock found. */
export type LockTry =
  /** taken; `current`: the record under the value's key, read in the same transaction */
  | { readonly acquired: true; readonly current: StoredRecord | undefined }
  /** free, and a value created since the waiter began waiting is there: no need to take the lock */
  | { readonly acquired: false; readonly produced: StoredRecord }
  /** held by someone else, for `remainingMs` more */
  | {
      readonly acquired: false
      readonly remainingMs: number
      readonly holder: string
      readonly traceparent: string | undefined
    }

export interface StoreBounds {
  readonly maxEntries: number
  readonly maxBytes: number
}

interface Meta {
  count: number
  bytes: number
  seq: number
  evictions: number
}

interface LockRecord {
  readonly token: string
  readonly expiresAt: number
  readonly traceparent: string | undefined
}

/** Another backend of this process has the store open with other bounds. */
export class BoundsMismatch extends Error {
  constructor(readonly bounds: StoreBounds) {
    super(`the store is open in this process with maxEntries ${bounds.maxEntries} and maxBytes ${bounds.maxBytes}`)
  }
}

/** The stores open in this process, by directory: every backend on one directory shares one environment. */
const openStores = new Map<string, FileStore>()

export class FileStore {
  readonly signals: Signals
  readonly #env: RootDatabase
  readonly #values: Database<Buffer, Buffer>
  readonly #order: Database<Buffer, number>
  readonly #locks: Database<Buffer, Buffer>
  readonly #marks: Database<Buffer, Buffer>
  readonly #meta: Database<Buffer, string>
  readonly #bounds: StoreBounds
  readonly #errors = new Set<(error: unknown) => void>()
  #refs = 0
  #closed = false
  #sweeper: NodeJS.Timeout | undefined
  #sweepCursor: { values?: Buffer; locks?: Buffer; marks?: Buffer } = {}

  /**
   * The store of directory `root` (created if missing), shared with the other backends of this process on the
   * same directory. Each `acquire` is matched by one `release`.
   */
  static acquire(lmdb: Lmdb, root: string, bounds: StoreBounds, onError: (error: unknown) => void): FileStore {
    const directory = storeDirectory(root)
    let store = openStores.get(directory)
    if (!store || store.#closed) {
      store = new FileStore(lmdb, directory, bounds)
      openStores.set(directory, store)
    } else if (store.#bounds.maxEntries !== bounds.maxEntries || store.#bounds.maxBytes !== bounds.maxBytes) {
      throw new BoundsMismatch(store.#bounds)
    }
    store.#refs++
    store.#errors.add(onError)
    return store
  }

  private constructor(
    lmdb: Lmdb,
    readonly directory: string,
    bounds: StoreBounds,
  ) {
    this.#bounds = bounds
    fs.mkdirSync(path.join(directory, 'signals'), { recursive: true })
    removeEarlierBoots(directory)
    checkDataFile(path.join(directory, 'data.mdb'))
    this.#env = lmdb.open({
      path: directory,
      maxDbs: 8,
      // Durability per commit is not worth an fsync for a cache; see the header comment.
      noSync: true,
      // One reader slot per thread that reads, per process.
      maxReaders: 1024,
    })
    this.#values = this.#env.openDB('values', { encoding: 'binary', keyEncoding: 'binary' })
    this.#order = this.#env.openDB('order', { encoding: 'binary' })
    this.#locks = this.#env.openDB('locks', { encoding: 'binary', keyEncoding: 'binary' })
    this.#marks = this.#env.openDB('marks', { encoding: 'binary', keyEncoding: 'binary' })
    this.#meta = this.#env.openDB('meta', { encoding: 'binary' })
    this.signals = new Signals(path.join(directory, 'signals'), (error) => this.#report(error))
    this.#scheduleSweep()
  }

  /** Lets go of one `acquire`; the last one closes the environment. */
  async release(onError: (error: unknown) => void): Promise<void> {
    this.#errors.delete(onError)
    if (--this.#refs > 0 || this.#closed) return
    this.#closed = true
    if (openStores.get(this.directory) === this) openStores.delete(this.directory)
    clearTimeout(this.#sweeper)
    this.signals.close()
    await this.#env.close()
  }

  #report(error: unknown): void {
    for (const report of this.#errors) report(error)
  }

  // ------------------------------------------------------------ values

  /** The record under `key`, or `undefined` (absent, expired, or not written by this backend). */
  read(key: string, now = Date.now()): StoredRecord | undefined {
    return parseRecord(this.#values.getBinary(storedKey(key)), now)
  }

  /** Writes records in one transaction (and evicts what the size bound requires). */
  writeMany(writes: readonly RecordWrite[]): void {
    if (writes.length === 0) return
    this.#write((txn) => {
      for (const write of writes) txn.put(storedKey(write.key), write.kind, write.expiresAt, write.body)
    })
  }

  /** Writes unless the value under `key` was created after `since`; whether it wrote. */
  writeIfNotNewer(key: string, expiresAt: number, body: Uint8Array, since: number): boolean {
    const stored = storedKey(key)
    return this.#write((txn) => {
      if (!txn.notNewer(stored, since)) return false
      txn.put(stored, KIND_VALUE, expiresAt, body)
      return true
    })
  }

  removeMany(keys: readonly string[]): void {
    if (keys.length === 0) return
    this.#write((txn) => {
      for (const key of keys) txn.remove(storedKey(key))
    })
  }

  /** Adds `by` to the counter at `key` (0 when absent) and returns it; `by = 0` reads without writing. */
  increment(key: string, by: number, expiresAt: number): number {
    const stored = storedKey(key)
    const valueOf = (record: StoredRecord | undefined) => {
      if (record?.kind !== KIND_COUNTER) return 0
      const n = Number(record.body.toString('latin1'))
      return Number.isSafeInteger(n) ? n : 0
    }
    if (by === 0) {
      this.#env.resetReadTxn()
      return valueOf(parseRecord(this.#values.getBinary(stored), Date.now()))
    }
    return this.#write((txn) => {
      const next = valueOf(parseRecord(this.#values.getBinary(stored), Date.now())) + by
      txn.put(stored, KIND_COUNTER, expiresAt, Buffer.from(String(next), 'latin1'))
      return next
    })
  }

  /** Entries the size bound counts (values and counters), as of the last commit this process has seen. */
  count(): number {
    return this.#readMeta().count
  }

  /** The size bound's figures, for tests and the benchmark. */
  stats(): Meta {
    this.#env.resetReadTxn()
    return this.#readMeta()
  }

  // ------------------------------------------------------------ locks

  /**
   * One attempt to take the lock of `key` for `token`, expiring `timeoutMs` from now. When `producedSince` is
   * given (a waiter) and the lock is free with a value created at or after it under `key`, that value is
   * returned instead: its creator released the lock with it.
   */
  tryLock(
    key: string,
    token: string,
    timeoutMs: number,
    traceparent: string | undefined,
    producedSince: number | undefined,
  ): LockTry {
    // A key's lock and its value are stored under the same key, in their own tables.
    const stored = storedKey(key)
    if (producedSince !== undefined) {
      // A waiter's attempt: a read first, since a live holder (the common answer) then costs no write transaction.
      this.#env.resetReadTxn()
      const now = Date.now()
      const seen = parseLock(this.#locks.getBinary(stored))
      if (seen !== undefined && seen !== 'foreign' && seen.expiresAt > now) return held(seen, now)
    }
    return this.#write(() => {
      const now = Date.now()
      const lock = parseLock(this.#locks.getBinary(stored))
      if (lock === 'foreign') {
        // Someone else's bytes under our lock: give them an expiry, as a holder that died would have.
        this.#locks.putSync(stored, lockBytes({ token: 'foreign', expiresAt: now + timeoutMs }))
        return { acquired: false, remainingMs: timeoutMs, holder: 'foreign', traceparent: undefined }
      }
      if (lock !== undefined && lock.expiresAt > now) return held(lock, now)
      const current = parseRecord(this.#values.getBinary(stored), now)
      if (lock === undefined && producedSince !== undefined && current?.kind === KIND_VALUE) {
        const ct = storedCreationTime(current.body)
        if (ct !== undefined && ct >= producedSince) return { acquired: false, produced: current }
      }
      this.#locks.putSync(stored, lockBytes({ token, expiresAt: now + timeoutMs, traceparent }))
      return { acquired: true, current }
    })
  }

  /**
   * Releases the lock of `key` if `token` still holds it (even past its expiry, as long as nobody took it over).
   * With `store`, first writes the value of `key`, fenced: only while the lock is ours and no value created after `since` is
   * stored. `released`: the lock was ours; `stored`: the value was written.
   */
  unlock(
    key: string,
    token: string,
    store?: { expiresAt: number; body: Uint8Array; since: number },
  ): { released: boolean; stored: boolean } {
    const storedLockAndValue = storedKey(key)
    return this.#write((txn) => {
      const lock = parseLock(this.#locks.getBinary(storedLockAndValue))
      if (lock === undefined || lock === 'foreign' || lock.token !== token) return { released: false, stored: false }
      let stored = false
      // A lapsed lock (past its expiry, even if nobody took it over) is released but stores nothing: its holder
      // stalled, and what it made may be older than what was written meanwhile without the lock.
      if (store !== undefined && lock.expiresAt > Date.now()) {
        if (txn.notNewer(storedLockAndValue, store.since)) {
          txn.put(storedLockAndValue, KIND_VALUE, store.expiresAt, store.body)
          stored = true
        }
      }
      this.#locks.removeSync(storedLockAndValue)
      return { released: true, stored }
    })
  }

  /** Whether a live holder has the lock of `key`. */
  lockHeld(key: string): boolean {
    this.#env.resetReadTxn()
    const lock = parseLock(this.#locks.getBinary(storedKey(key)))
    return lock === 'foreign' || (lock !== undefined && lock.expiresAt > Date.now())
  }

  /** @internal for tests: makes the lock held by `token` for `ttlMs`, whoever holds it now */
  forceLock(key: string, token: string, ttlMs: number): void {
    this.#write(() => {
      this.#locks.putSync(storedKey(key), lockBytes({ token, expiresAt: Date.now() + ttlMs }))
    })
  }

  /**
   * @internal for tests: writes `bytes` under a key as another program would: as the whole record (`header:
   * false`), or as the body of a record of ours (another format's value)
   */
  writeRaw(key: string, bytes: Uint8Array, { header = false } = {}): void {
    const stored = storedKey(key)
    this.#write((txn) => {
      if (header) return txn.put(stored, KIND_VALUE, 0, bytes)
      txn.remove(stored)
      this.#values.putSync(stored, Buffer.from(bytes))
    })
  }

  /** @internal for tests: writes raw bytes as the lock record of a key */
  writeRawLock(key: string, bytes: Uint8Array): void {
    this.#write(() => this.#locks.putSync(storedKey(key), Buffer.from(bytes)))
  }

  // ------------------------------------------------------------ invalidation marks

  readRegionMarks(region: string): InvalidationState {
    this.#env.resetReadTxn()
    return parseMarks(this.#marks.getBinary(regionMarkKey(region)), Date.now())
  }

  /** Max-merges marks into the region's; returns the merged marks. */
  mergeRegionMarks(region: string, marks: InvalidationState): InvalidationState {
    const key = regionMarkKey(region)
    return this.#write(() => {
      const merged = maxMerge(parseMarks(this.#marks.getBinary(key), Date.now()), marks)
      this.#marks.putSync(key, marksBytes(merged, 0))
      return merged
    })
  }

  readTagMarks(region: string, tags: readonly string[]): InvalidationState[] {
    this.#env.resetReadTxn()
    const now = Date.now()
    return tags.map((tag) => parseMarks(this.#marks.getBinary(tagMarkKey(region, tag)), now))
  }

  /**
   * Max-merges tag marks; each expires `ttlMs` after its latest time (`undefined`: never). Returns the merged
   * marks, in order.
   */
  mergeTagMarks(
    region: string,
    entries: ReadonlyArray<readonly [string, InvalidationState]>,
    ttlMs: number | undefined,
  ): InvalidationState[] {
    return this.#write(() => {
      const now = Date.now()
      return entries.map(([tag, marks]) => {
        const key = tagMarkKey(region, tag)
        const merged = maxMerge(parseMarks(this.#marks.getBinary(key), now), marks)
        const expiresAt = ttlMs === undefined ? 0 : Math.max(merged.hardAt, merged.softAt) + ttlMs
        this.#marks.putSync(key, marksBytes(merged, expiresAt))
        return merged
      })
    })
  }

  // ------------------------------------------------------------ transactions, the size bound, sweeping

  /** Runs `work` in a write transaction, then evicts what the size bound requires, then commits. */
  #write<T>(work: (txn: WriteTxn) => T): T {
    if (this.#closed) throw new Error('the file store is closed')
    return this.#env.transactionSync(() => {
      const txn = new WriteTxn(this.#values, this.#order, this.#readMeta())
      const result = work(txn)
      if (txn.changed) {
        txn.evict(this.#bounds)
        this.#meta.putSync('state', metaBytes(txn.meta))
      }
      return result
    })
  }

  #readMeta(): Meta {
    const bytes = this.#meta.getBinary('state')
    if (bytes === undefined || bytes.length < 32) return { count: 0, bytes: 0, seq: 0, evictions: 0 }
    return {
      count: bytes.readDoubleLE(0),
      bytes: bytes.readDoubleLE(8),
      seq: bytes.readDoubleLE(16),
      evictions: bytes.readDoubleLE(24),
    }
  }

  #scheduleSweep(): void {
    if (this.#closed) return
    this.#sweeper = setTimeout(
      () => {
        try {
          this.sweep()
        } catch (error) {
          this.#report(error)
        }
        this.#scheduleSweep()
      },
      SWEEP_INTERVAL_MS * (0.5 + Math.random() * 0.5),
    )
    this.#sweeper.unref()
  }

  /**
   * Removes expired values, expired locks and expired tag marks, `SWEEP_BATCH` of each table per call, going on
   * where the last call stopped (each process sweeps; their work adds up). Also clears the reader slots of
   * processes that died, which would otherwise keep LMDB from reusing freed pages.
   * @internal
   */
  sweep(): void {
    if (this.#closed) return
    this.#env.readerCheck()
    // Only a value's record header tells whether it expired: the scan copies just that, not the whole value.
    this.#sweepCursor.values = this.#write((txn) =>
      scan(
        this.#values,
        this.#sweepCursor.values,
        (key, header, now) => {
          const record = parseRecord(header, now)
          if (record === undefined && hasMagic(header)) txn.remove(key)
        },
        HEADER_BYTES,
      ),
    )
    this.#sweepCursor.locks = this.#write(() =>
      scan(this.#locks, this.#sweepCursor.locks, (key, bytes, now) => {
        const lock = parseLock(bytes)
        if (lock !== undefined && lock !== 'foreign' && lock.expiresAt <= now) this.#locks.removeSync(key)
      }),
    )
    this.#sweepCursor.marks = this.#write(() =>
      scan(this.#marks, this.#sweepCursor.marks, (key, bytes, now) => {
        const expiresAt = marksExpiry(bytes)
        if (expiresAt !== 0 && expiresAt <= now) this.#marks.removeSync(key)
      }),
    )
  }
}

/**
 * Scans up to `SWEEP_BATCH` entries of `db` from `after` (exclusive), calling `visit` on each with a copy of its
 * bytes (of the first `copyBytes` only, when given); returns where the next scan starts (`undefined`: the table's
 * beginning).
 */
function scan(
  db: Database<Buffer, Buffer>,
  after: Buffer | undefined,
  visit: (key: Buffer, bytes: Buffer, now: number) => void,
  copyBytes?: number,
): Buffer | undefined {
  const now = Date.now()
  const entries: Array<{ key: Buffer; value: Buffer }> = []
  for (const entry of db.getRange(
    after === undefined ? { limit: SWEEP_BATCH + 1 } : { start: after, limit: SWEEP_BATCH + 1 },
  )) {
    if (after !== undefined && entries.length === 0 && Buffer.compare(entry.key, after) === 0) continue
    const value = copyBytes === undefined ? entry.value : entry.value.subarray(0, copyBytes)
    entries.push({ key: Buffer.from(entry.key), value: Buffer.from(value) })
    if (entries.length === SWEEP_BATCH) break
  }
  for (const { key, value } of entries) visit(key, value, now)
  return entries.length === SWEEP_BATCH ? entries[entries.length - 1]!.key : undefined
}

/** The changes of one write transaction to the values and their bookkeeping. */
class WriteTxn {
  changed = false

  constructor(
    private readonly values: Database<Buffer, Buffer>,
    private readonly order: Database<Buffer, number>,
    readonly meta: Meta,
  ) {}

  /**
   * Whether the value under `key` was created at or before `since` (or is absent, expired, or not ours). A creation
   * time more than the tolerance in the future is not believed (as in the region), so it blocks no write.
   */
  notNewer(key: Buffer, since: number): boolean {
    const now = Date.now()
    const record = parseRecord(this.values.getBinary(key), now)
    if (record?.kind !== KIND_VALUE) return true
    return !createdAfter(record.body, since, now)
  }

  put(key: Buffer, kind: number, expiresAt: number, body: Uint8Array): void {
    this.remove(key)
    const seq = ++this.meta.seq
    const record = Buffer.allocUnsafe(HEADER_BYTES + body.length)
    record[0] = RECORD_MAGIC_0
    record[1] = RECORD_MAGIC_1
    record[2] = STORE_FORMAT
    record[3] = kind
    record.writeDoubleLE(expiresAt, 4)
    record.writeDoubleLE(seq, 12)
    record.set(body, HEADER_BYTES)
    this.values.putSync(key, record)
    this.order.putSync(seq, key)
    this.meta.count++
    this.meta.bytes += key.length + record.length
    this.changed = true
  }

  remove(key: Buffer): void {
    const old = this.values.getBinary(key)
    if (old === undefined) return
    this.values.removeSync(key)
    this.changed = true
    if (!hasMagic(old)) return // someone else's bytes: never counted
    this.order.removeSync(old.readDoubleLE(12))
    this.meta.count = Math.max(0, this.meta.count - 1)
    this.meta.bytes = Math.max(0, this.meta.bytes - key.length - old.length)
  }

  /** Removes the least recently written entries until the store is within its bounds. */
  evict(bounds: StoreBounds): void {
    while (this.meta.count > bounds.maxEntries || this.meta.bytes > bounds.maxBytes) {
      let oldest: { key: number; value: Buffer } | undefined
      for (const entry of this.order.getRange({ limit: 1 }))
        oldest = { key: entry.key, value: Buffer.from(entry.value) }
      if (oldest === undefined) {
        // Nothing left to evict: the figures drifted (they cannot, short of a bug); start them again.
        this.meta.count = 0
        this.meta.bytes = 0
        return
      }
      const record = this.values.getBinary(oldest.value)
      if (record !== undefined && hasMagic(record) && record.readDoubleLE(12) === oldest.key) {
        this.remove(oldest.value)
        this.meta.evictions++
      } else {
        this.order.removeSync(oldest.key)
      }
    }
  }
}

// ------------------------------------------------------------ encodings

/** A key as stored: its UTF-8 bytes, or `sha1:<hex>` for keys too long (or empty) for LMDB. */
export function storedKey(key: string): Buffer {
  const bytes = Buffer.from(key, 'utf8')
  if (bytes.length > 0 && bytes.length <= MAX_KEY_BYTES && !HASHED.test(key)) return bytes
  return Buffer.from(`sha1:${createHash('sha1').update(bytes).digest('hex')}`, 'latin1')
}

function hasMagic(bytes: Buffer): boolean {
  return bytes.length >= HEADER_BYTES && bytes[0] === RECORD_MAGIC_0 && bytes[1] === RECORD_MAGIC_1
}

function parseRecord(bytes: Buffer | undefined, now: number): StoredRecord | undefined {
  if (bytes === undefined || !hasMagic(bytes) || bytes[2] !== STORE_FORMAT) return undefined
  const kind = bytes[3]!
  if (kind !== KIND_VALUE && kind !== KIND_COUNTER) return undefined
  const expiresAt = bytes.readDoubleLE(4)
  if (expiresAt !== 0 && expiresAt <= now) return undefined
  return { kind, expiresAt, body: bytes.subarray(HEADER_BYTES) }
}

function held(lock: LockRecord, now: number): LockTry {
  return { acquired: false, remainingMs: lock.expiresAt - now, holder: lock.token, traceparent: lock.traceparent }
}

function lockBytes(lock: { token: string; expiresAt: number; traceparent?: string | undefined }): Buffer {
  return Buffer.from(
    JSON.stringify(
      lock.traceparent === undefined
        ? { t: lock.token, e: lock.expiresAt }
        : { t: lock.token, e: lock.expiresAt, p: lock.traceparent },
    ),
  )
}

/** A lock record, `undefined` when there is none, `'foreign'` when the bytes are not ours. */
function parseLock(bytes: Buffer | undefined): LockRecord | 'foreign' | undefined {
  if (bytes === undefined) return undefined
  try {
    const parsed = JSON.parse(bytes.toString('utf8')) as { t?: unknown; e?: unknown; p?: unknown }
    if (typeof parsed.t === 'string' && typeof parsed.e === 'number' && Number.isFinite(parsed.e))
      return { token: parsed.t, expiresAt: parsed.e, traceparent: typeof parsed.p === 'string' ? parsed.p : undefined }
  } catch {
    // not ours
  }
  return 'foreign'
}

function regionMarkKey(region: string): Buffer {
  return storedKey(`r\u0000${region}`)
}

function tagMarkKey(region: string, tag: string): Buffer {
  return storedKey(`t\u0000${region}\u0000${tag}`)
}

function marksBytes(marks: InvalidationState, expiresAt: number): Buffer {
  return Buffer.from(JSON.stringify({ h: marks.hardAt, s: marks.softAt, e: expiresAt }))
}

function parseMarks(bytes: Buffer | undefined, now: number): InvalidationState {
  if (bytes === undefined) return NOT_INVALIDATED
  try {
    const { h, s, e } = JSON.parse(bytes.toString('utf8')) as { h?: unknown; s?: unknown; e?: unknown }
    if (typeof e === 'number' && e !== 0 && e <= now) return NOT_INVALIDATED
    return {
      hardAt: typeof h === 'number' && Number.isFinite(h) ? h : 0,
      softAt: typeof s === 'number' && Number.isFinite(s) ? s : 0,
    }
  } catch {
    return NOT_INVALIDATED
  }
}

function marksExpiry(bytes: Buffer): number {
  try {
    const { e } = JSON.parse(bytes.toString('utf8')) as { e?: unknown }
    return typeof e === 'number' && Number.isFinite(e) ? e : 0
  } catch {
    return 0
  }
}

function maxMerge(a: InvalidationState, b: InvalidationState): InvalidationState {
  return { hardAt: Math.max(a.hardAt, b.hardAt), softAt: Math.max(a.softAt, b.softAt) }
}

function metaBytes(meta: Meta): Buffer {
  const bytes = Buffer.allocUnsafe(32)
  bytes.writeDoubleLE(meta.count, 0)
  bytes.writeDoubleLE(meta.bytes, 8)
  bytes.writeDoubleLE(meta.seq, 16)
  bytes.writeDoubleLE(meta.evictions, 24)
  return bytes
}

// ------------------------------------------------------------ the directory

/** `<root>/corral-file-v<STORE_FORMAT>/<boot id>`: the directory of this format and this boot of the machine. */
export function storeDirectory(root: string): string {
  return path.join(path.resolve(root), `corral-file-v${STORE_FORMAT}`, bootId().id)
}

let cachedBootId: { id: string; exact: boolean } | undefined

/**
 * Identifies this boot of the machine: Linux's `boot_id` (`exact`); elsewhere the boot time from the uptime, to the
 * minute (processes started the same minute agree; a clock change of a minute or more splits them into two stores).
 */
export function bootId(): { id: string; exact: boolean } {
  if (cachedBootId !== undefined) return cachedBootId
  try {
    cachedBootId = { id: fs.readFileSync('/proc/sys/kernel/random/boot_id', 'latin1').trim(), exact: true }
  } catch {
    cachedBootId = { id: `boot-${Math.round((Date.now() - os.uptime() * 1000) / 60_000)}`, exact: false }
  }
  return cachedBootId
}

/** LMDB's magic number, at the start of the meta page (after a 16-byte page header in LMDB 0.9, 24 in 1.0). */
const LMDB_MAGIC = 0xbeefc0de

/**
 * Refuses a data file that is not an LMDB environment before LMDB maps it: LMDB trusts its file, and opening
 * someone else's bytes can crash the process instead of failing.
 */
function checkDataFile(file: string): void {
  let head: Buffer
  try {
    const fd = fs.openSync(file, 'r')
    try {
      head = Buffer.alloc(32)
      const read = fs.readSync(fd, head, 0, 32, 0)
      if (read === 0) return // a new, empty file: LMDB initializes it
      head = head.subarray(0, read)
    } finally {
      fs.closeSync(fd)
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return
    throw error
  }
  const magicAt = (offset: number) => head.length >= offset + 4 && head.readUInt32LE(offset) === LMDB_MAGIC
  if (!magicAt(16) && !magicAt(24)) throw new Error(`${file} is not an LMDB data file`)
}

/**
 * Removes the stores of earlier boots: no process of this boot uses them. Only where the boot is known exactly: an
 * approximate boot id could name a store that a process of this boot still uses.
 */
function removeEarlierBoots(directory: string): void {
  if (!bootId().exact) return
  const parent = path.dirname(directory)
  const current = path.basename(directory)
  let entries: string[]
  try {
    entries = fs.readdirSync(parent)
  } catch {
    return
  }
  for (const entry of entries) {
    if (entry !== current) fs.rmSync(path.join(parent, entry), { recursive: true, force: true })
  }
}
