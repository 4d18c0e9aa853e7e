import { CachedValue, NOT_FRESH, type ValueExtensions } from '../cached-value.js'
import { coarseWallClock } from '../clock.js'
import type { FreshnessTest } from './api.js'

/** No slot (the end of a list). */
const NONE = 0xffff_ffff
/** Slots allocated at first; the arrays double from there up to the bound. */
const INITIAL_SLOTS = 64

/** Why entries left a store on their own: for room (`size`) or past `maxAgeMs` (`age`). */
export type EvictionReason = 'size' | 'age'

export interface EntryStoreOptions {
  /** How long an entry is served after it was set; `undefined`: until evicted or deleted. */
  maxAgeMs?: number
  /** Milliseconds, for `maxAgeMs`. Default: the coarse wall clock (clock.ts), which fake timers move. */
  clock?: () => number
  /** Called for each entry that left for room or for age (not for `delete`, `clear` or a replacement). */
  evicted?: (reason: EvictionReason) => void
}

/**
 * A bounded LRU map from keys to cached values, which keeps each value as its parts in parallel arrays (payload,
 * creation time, extensions) rather than as a `CachedValue` object per entry: an entry costs its slot in the key
 * index (a `Map`), three array slots and its place in the recency list, about what lru-cache costs without the
 * `CachedValue` it would hold (see bench/RESULTS.md, Memory). The memory backend and a region's L1 are this store.
 *
 * - `getFresh` is the hit path: it asks the region's `FreshnessTest` about the stored parts and returns the payload,
 *   allocating nothing. `get` and `peek` rebuild a `CachedValue` (another read path, which allocates anyway).
 * - Recency is a doubly linked list through two `Uint32Array`s (free slots are chained through the same array);
 *   a read of an entry near the front leaves it there (see `#read`).
 *   The arrays grow by doubling up to `maxEntries`, so an empty store with a large bound stays small.
 * - Extensions (tags, jitter, fail-safe trust) are rare: their array exists only once a value has some.
 */
export class EntryStore {
  readonly maxEntries: number
  readonly #maxAgeMs: number | undefined
  readonly #clock: (() => number) | undefined
  readonly #evicted: ((reason: EvictionReason) => void) | undefined
  readonly #index = new Map<string, number>()
  #capacity = 0
  #keys: Array<string | undefined> = []
  #payloads: unknown[] = []
  #cts = new Float64Array(0)
  #exts: Array<ValueExtensions | undefined> | undefined
  /** when each entry was set, with `maxAgeMs` */
  #setAt: Float64Array | undefined
  /** toward the least recently used; for a free slot, the next free slot */
  #older = new Uint32Array(0)
  /** toward the most recently used */
  #newer = new Uint32Array(0)
  /** `#moves` when each entry was last moved to the front */
  #movedAt = new Uint32Array(0)
  /** moves to the front so far (wrapping at 2^32) */
  #moves = 0
  /** a read leaves in place an entry moved to the front fewer than this many moves ago (see `#read`) */
  readonly #settled: number
  #newest = NONE
  #oldest = NONE
  #free = NONE
  /** slots ever handed out: below it, a slot is live or free */
  #used = 0

  constructor(maxEntries: number, options: EntryStoreOptions = {}) {
    this.maxEntries = maxEntries
    this.#maxAgeMs = options.maxAgeMs
    this.#clock = options.maxAgeMs === undefined ? undefined : (options.clock ?? coarseWallClock)
    this.#evicted = options.evicted
    this.#settled = maxEntries >>> 2
    this.#allocate(Math.min(maxEntries, INITIAL_SLOTS))
  }

  get size(): number {
    return this.#index.size
  }

  /** The hit path: the payload of `key` if `test` finds it fresh, else `NOT_FRESH`. Marks it most recently used. */
  getFresh(key: string, test: FreshnessTest, expirationMs: number): unknown {
    const slot = this.#live(key)
    if (slot === NONE || !test.isFreshStamp(this.#cts[slot]!, this.#exts?.[slot], expirationMs)) return NOT_FRESH
    this.#read(slot)
    return this.#payloads[slot]
  }

  /** The value of `key`, marked most recently used. */
  get(key: string): CachedValue | undefined {
    const slot = this.#live(key)
    if (slot === NONE) return undefined
    this.#read(slot)
    return this.#valueAt(slot)
  }

  /** The value of `key`, leaving its recency as it is. */
  peek(key: string): CachedValue | undefined {
    const slot = this.#index.get(key)
    return slot === undefined || this.#aged(slot) ? undefined : this.#valueAt(slot)
  }

  /** The creation time of `key`'s value, leaving its recency as it is; `-Infinity` when absent. */
  peekCreated(key: string): number {
    const slot = this.#index.get(key)
    return slot === undefined || this.#aged(slot) ? Number.NEGATIVE_INFINITY : this.#cts[slot]!
  }

  /** Stores `value` under `key` as the most recently used entry, evicting the least recently used one if full. */
  set(key: string, value: CachedValue): void {
    let slot = this.#index.get(key)
    if (slot === undefined) {
      slot = this.#takeSlot()
      this.#keys[slot] = key
      this.#index.set(key, slot)
      this.#linkNewest(slot)
    } else {
      this.#touch(slot)
    }
    this.#payloads[slot] = value.payload
    this.#cts[slot] = value.ct
    const ext = value.ext
    if (ext !== undefined) (this.#exts ??= new Array<ValueExtensions | undefined>(this.#capacity))[slot] = ext
    else if (this.#exts !== undefined) this.#exts[slot] = undefined
    if (this.#setAt !== undefined) this.#setAt[slot] = this.#clock!()
  }

  /** Removes `key`; true if it was there. */
  delete(key: string): boolean {
    const slot = this.#index.get(key)
    if (slot === undefined) return false
    this.#remove(slot)
    return true
  }

  /** Removes every entry and gives the arrays back. */
  clear(): void {
    this.#index.clear()
    this.#allocate(Math.min(this.maxEntries, INITIAL_SLOTS))
  }

  // ---------------------------------------------------------------- internals

  /** The slot of `key`, `NONE` if absent or past its age (then removed). */
  #live(key: string): number {
    const slot = this.#index.get(key)
    if (slot === undefined) return NONE
    if (this.#setAt !== undefined && this.#aged(slot)) {
      this.#remove(slot)
      this.#evicted?.('age')
      return NONE
    }
    return slot
  }

  #aged(slot: number): boolean {
    return this.#setAt !== undefined && this.#clock!() - this.#setAt[slot]! > this.#maxAgeMs!
  }

  #valueAt(slot: number): CachedValue {
    return new CachedValue(this.#payloads[slot], this.#cts[slot]!, this.#exts?.[slot])
  }

  /** A slot for a new entry: a free one, a new one (growing the arrays), or the least recently used one's. */
  #takeSlot(): number {
    if (this.#free !== NONE) {
      const slot = this.#free
      this.#free = this.#older[slot]!
      return slot
    }
    if (this.#used === this.#capacity && this.#capacity < this.maxEntries)
      this.#grow(Math.min(this.maxEntries, this.#capacity * 2))
    if (this.#used < this.#capacity) return this.#used++
    const slot = this.#oldest
    this.#remove(slot)
    this.#evicted?.('size')
    // #remove chained it as the first free slot
    this.#free = this.#older[slot]!
    return slot
  }

  #remove(slot: number): void {
    this.#unlink(slot)
    this.#index.delete(this.#keys[slot]!)
    this.#keys[slot] = undefined
    this.#payloads[slot] = undefined
    if (this.#exts !== undefined) this.#exts[slot] = undefined
    this.#older[slot] = this.#free
    this.#free = slot
  }

  /**
   * A read's use of an entry. Moving an entry to the front rewrites its neighbours' links, scattered through the
   * arrays, on every read of a popular key; an entry moved there less than a quarter of the bound's worth of moves
   * ago is still in the front quarter of the list and is left there. So a read entry is never evicted before
   * three quarters of the bound's worth of other entries were written or read after it (exact recency for bounds
   * under 4), and reads of hot keys write nothing.
   */
  #read(slot: number): void {
    if ((this.#moves - this.#movedAt[slot]!) >>> 0 < this.#settled) return
    this.#touch(slot)
  }

  #touch(slot: number): void {
    if (slot === this.#newest) return
    this.#unlink(slot)
    this.#linkNewest(slot)
  }

  #unlink(slot: number): void {
    const older = this.#older[slot]!
    const newer = this.#newer[slot]!
    if (newer === NONE) this.#newest = older
    else this.#older[newer] = older
    if (older === NONE) this.#oldest = newer
    else this.#newer[older] = newer
  }

  #linkNewest(slot: number): void {
    this.#movedAt[slot] = this.#moves = (this.#moves + 1) >>> 0
    this.#newer[slot] = NONE
    this.#older[slot] = this.#newest
    if (this.#newest === NONE) this.#oldest = slot
    else this.#newer[this.#newest] = slot
    this.#newest = slot
  }

  /** Fresh, empty arrays of `capacity` slots. */
  #allocate(capacity: number): void {
    this.#capacity = capacity
    this.#keys = new Array<string | undefined>(capacity)
    this.#payloads = new Array<unknown>(capacity)
    this.#cts = new Float64Array(capacity)
    this.#exts = undefined
    this.#setAt = this.#maxAgeMs === undefined ? undefined : new Float64Array(capacity)
    this.#older = new Uint32Array(capacity)
    this.#newer = new Uint32Array(capacity)
    this.#movedAt = new Uint32Array(capacity)
    this.#moves = 0
    this.#newest = NONE
    this.#oldest = NONE
    this.#free = NONE
    this.#used = 0
  }

  /** The same entries in arrays of `capacity` slots. */
  #grow(capacity: number): void {
    const used = this.#used
    const keys = new Array<string | undefined>(capacity)
    const payloads = new Array<unknown>(capacity)
    for (let slot = 0; slot < used; slot++) {
      keys[slot] = this.#keys[slot]
      payloads[slot] = this.#payloads[slot]
    }
    this.#keys = keys
    this.#payloads = payloads
    if (this.#exts !== undefined) {
      const exts = new Array<ValueExtensions | undefined>(capacity)
      for (let slot = 0; slot < used; slot++) exts[slot] = this.#exts[slot]
      this.#exts = exts
    }
    this.#cts = grown(this.#cts, capacity)
    this.#older = grown(this.#older, capacity)
    this.#newer = grown(this.#newer, capacity)
    this.#movedAt = grown(this.#movedAt, capacity)
    if (this.#setAt !== undefined) this.#setAt = grown(this.#setAt, capacity)
    this.#capacity = capacity
  }
}

function grown<A extends Float64Array | Uint32Array>(array: A, capacity: number): A {
  const next = new (array.constructor as new (length: number) => A)(capacity)
  next.set(array)
  return next
}
