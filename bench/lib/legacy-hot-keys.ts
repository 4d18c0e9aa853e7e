/**
 * The hot-key tracker as it was before sampling adapted to the rate (packages/core/src/telemetry/hot-keys.ts at
 * commit 5790a24), kept frozen as the baseline of the `hot-keys` bench case: it records the first 1000 hits of each
 * second exactly, then samples 1 hit in 32 with weight 32. Changes from that file, and only these: imports (the
 * coarse tick is inlined, since core does not export it), the class is renamed `LegacyHotKeyTracker`, and a `tick`
 * option lets a simulation drive its per-second budget (default: the real one-second tick, as in core).
 *
 * Do not edit the algorithm: the point of this file is to measure what the old code did.
 */
import { ValidationError } from '@corral/core'

let realTick = 0
let tickStarted = false
function currentTick(): number {
  if (!tickStarted) {
    tickStarted = true
    setInterval(() => realTick++, 1000).unref()
  }
  return realTick
}

interface HotKey {
  key: string
  /** Requests (hits + misses) within the window; an estimate (see `HotKeyTracker`). */
  count: number
  hits: number
  misses: number
  regenerations: number
}

export interface LegacyHotKeyTrackerOptions {
  /** How many keys are tracked (the k of top-k). Default 50. */
  capacity?: number
  /** Length of the sliding window in seconds. Default 60. */
  windowSeconds?: number
  /** Buckets per sketch row, rounded up to a power of two. Default 1024. */
  width?: number
  /** Sketch rows (1-8). Default 2. */
  depth?: number
  /** Milliseconds; injectable for tests. Default `performance.now`. */
  clock?: () => number
  /** The per-second budget's clock, in whole seconds. Default: a real one-second tick. */
  tick?: () => number
}

const DEFAULT_CAPACITY = 50
const DEFAULT_WINDOW_SECONDS = 60
const DEFAULT_WIDTH = 1024
const DEFAULT_DEPTH = 2
const DEFAULT_LIMIT = 20

/*
 * Hot-key sampling. Recording a hit in the tracker costs a hash and a sketch update, several times the cost of the
 * hit itself. So each region records its first EXACT_HITS_PER_SECOND hits of every second exactly — a quiet region
 * shows exact counts — and beyond that samples hits with probability 1/HIT_SAMPLE_WEIGHT, each sample standing for
 * HIT_SAMPLE_WEIGHT hits (an unbiased estimate; the heavy keys the tracker exists for are sampled thousands of
 * times a minute). Misses and regenerations are rare and always recorded. The second boundary is a shared coarse
 * tick, so the hit path reads no clock for this.
 */
const EXACT_HITS_PER_SECOND = 1000
const HIT_SAMPLE_WEIGHT = 32
/** Geometric skip length: the number of hits until the next sampled one, mean HIT_SAMPLE_WEIGHT. */
const LOG_KEEP = Math.log(1 - 1 / HIT_SAMPLE_WEIGHT)
const nextSkip = () => 1 + Math.floor(Math.log(1 - Math.random()) / LOG_KEEP)

/** HeavyKeeper's decay base: a bucket holding count `c` is decremented with probability `DECAY_BASE^-c`. */
const DECAY_BASE = 1.08
/**
 * `DECAY_THRESHOLD[c] = DECAY_BASE^-c × 2^32`, compared with a 32-bit random number. Counts past the table
 * never decay (1.08^-1024 ≈ 10^-34).
 */
const DECAY_THRESHOLD = (() => {
  const table = new Uint32Array(1024)
  for (let c = 1; c < table.length; c++) table[c] = Math.floor(DECAY_BASE ** -c * 0x1_0000_0000)
  table[0] = 0xffff_ffff
  return table
})()

/** Odd multipliers, one per row, for multiplicative hashing of the 32-bit key hash into a row index. */
const ROW_MULTIPLIERS = [
  0x9e3779b1, 0x85ebca77, 0xc2b2ae3d, 0x27d4eb2f, 0x165667b1, 0xd3a2646d, 0xfd7046c5, 0xb55a4f09,
] as const
const MAX_DEPTH = ROW_MULTIPLIERS.length
const MAX_WIDTH = 1 << 20

/** Estimated bytes of one candidate record (object header + fields) plus its `Map` entry. */
const CANDIDATE_BYTES = 64 + 24
/** Estimated bytes of a string header; the characters are counted as 2 bytes each (an upper bound). */
const STRING_HEADER_BYTES = 16

/** FNV-1a (32-bit) over the UTF-16 code units, then murmur3's finalizer for avalanche. Allocation-free. */
function hashKey(key: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

interface Candidate {
  key: string
  /** `hashKey(key)`: the fingerprint in the sketch and the source of the row indexes. */
  hash: number
  count: number
  hits: number
  misses: number
  regenerations: number
  /** Position in the heap array. */
  pos: number
}

/** One sub-window: a HeavyKeeper sketch plus a min-heap (by count) of candidates indexed by key. */
class SubWindow {
  /** `[fingerprint, count]` pairs, row-major: bucket `i` of row `r` is at `2 × (r × width + i)`. */
  readonly buckets: Uint32Array
  readonly index = new Map<string, Candidate>()
  /** Min-heap in `heap[0 .. size)`; records past `size` are kept for reuse. */
  readonly heap: Candidate[] = []
  size = 0

  constructor(width: number, depth: number) {
    this.buckets = new Uint32Array(2 * width * depth)
  }

  reset(): void {
    this.buckets.fill(0)
    this.index.clear()
    // Keep the records for reuse but drop the key strings.
    for (let i = 0; i < this.size; i++) (this.heap[i] as Candidate).key = ''
    this.size = 0
  }

  siftUp(pos: number): void {
    const heap = this.heap
    const item = heap[pos] as Candidate
    while (pos > 0) {
      const parentPos = (pos - 1) >> 1
      const parent = heap[parentPos] as Candidate
      if (parent.count <= item.count) break
      heap[pos] = parent
      parent.pos = pos
      pos = parentPos
    }
    heap[pos] = item
    item.pos = pos
  }

  siftDown(pos: number): void {
    const heap = this.heap
    const size = this.size
    const item = heap[pos] as Candidate
    for (;;) {
      let childPos = 2 * pos + 1
      if (childPos >= size) break
      let child = heap[childPos] as Candidate
      const rightPos = childPos + 1
      if (rightPos < size) {
        const right = heap[rightPos] as Candidate
        if (right.count < child.count) {
          childPos = rightPos
          child = right
        }
      }
      if (item.count <= child.count) break
      heap[pos] = child
      child.pos = pos
      pos = childPos
    }
    heap[pos] = item
    item.pos = pos
  }
}

/**
 * Tracks the hottest keys of one region. `record` is meant for the cache hit path: it is O(1) for tracked keys
 * and O(key length + depth) otherwise, and memory is bounded by the sketch size plus `capacity` key strings per
 * sub-window, whatever the number of distinct keys.
 *
 * Accuracy: `count` is the sketch's estimate when the key entered the candidate set plus its exact requests
 * since then (a slight underestimate for keys that entered late; in the previous sub-window, keys not tracked
 * there are read from its sketch). `hits`, `misses` and `regenerations` are counted exactly while a key is a
 * candidate, so `hits + misses <= count`. The previous sub-window's numbers are weighted by how much of it still
 * lies inside the window, so all numbers are estimates of the last `windowSeconds`.
 */
export class LegacyHotKeyTracker {
  readonly capacity: number
  readonly windowSeconds: number
  /** Buckets per sketch row (a power of two). */
  readonly width: number
  /** Sketch rows. */
  readonly depth: number

  private readonly clock: () => number
  private readonly tick: () => number
  private readonly windowMs: number
  /** `32 - log2(width)`: the row index is the top bits of `hash × ROW_MULTIPLIERS[row]`. */
  private readonly indexShift: number
  private current: SubWindow
  private previous: SubWindow
  private currentStart: number
  private nextRotation: number
  /** xorshift32 state for the decay coin flips (deterministic, so tests are reproducible). */
  private random = 0x2545f491
  private hitTick = -1
  private exactHitsLeft = 0
  private hitsToSkip = 1

  constructor(options: LegacyHotKeyTrackerOptions = {}) {
    this.capacity = positiveInteger(options.capacity, DEFAULT_CAPACITY, 'capacity', 1_000_000)
    const windowSeconds = options.windowSeconds ?? DEFAULT_WINDOW_SECONDS
    if (typeof windowSeconds !== 'number' || !Number.isFinite(windowSeconds) || windowSeconds <= 0) {
      throw new ValidationError(
        `hot keys windowSeconds must be a positive number of seconds; got ${String(windowSeconds)}`,
      )
    }
    this.windowSeconds = windowSeconds
    this.windowMs = windowSeconds * 1000
    const width = positiveInteger(options.width, DEFAULT_WIDTH, 'width', MAX_WIDTH)
    const log2Width = Math.max(1, Math.ceil(Math.log2(width)))
    this.width = 2 ** log2Width
    this.indexShift = 32 - log2Width
    this.depth = positiveInteger(options.depth, DEFAULT_DEPTH, 'depth', MAX_DEPTH)
    if (options.clock !== undefined && typeof options.clock !== 'function') {
      throw new ValidationError('hot keys clock must be a function returning milliseconds')
    }
    this.clock = options.clock ?? (() => performance.now())
    this.tick = options.tick ?? currentTick
    this.current = new SubWindow(this.width, this.depth)
    this.previous = new SubWindow(this.width, this.depth)
    this.currentStart = this.clock()
    this.nextRotation = this.currentStart + this.windowMs
  }

  /**
   * One cache read of `key`: a hit (fresh or stale value served) or a miss. Pass the key as it should be
   * displayed; it is stored as given while the key is tracked. `weight` > 1 records a sampled read that stands
   * for that many reads.
   */
  record(key: string, result: 'hit' | 'miss', weight = 1): void {
    const now = this.clock()
    if (now >= this.nextRotation) this.rotate(now)
    const window = this.current
    const tracked = window.index.get(key)
    if (tracked !== undefined) {
      tracked.count += weight
      if (result === 'hit') tracked.hits += weight
      else tracked.misses += weight
      window.siftDown(tracked.pos)
      return
    }
    this.offer(window, key, result === 'hit', weight)
  }

  /** A served read (hit or stale) of `key`, from the hit path: recorded exactly, or sampled under load. */
  hit(key: string): void {
    const tick = this.tick()
    if (this.hitTick !== tick) {
      this.hitTick = tick
      this.exactHitsLeft = EXACT_HITS_PER_SECOND
    }
    if (this.exactHitsLeft > 0) {
      this.exactHitsLeft--
      this.record(key, 'hit')
    } else if (--this.hitsToSkip <= 0) {
      this.hitsToSkip = nextSkip()
      this.record(key, 'hit', HIT_SAMPLE_WEIGHT)
    }
  }

  /** The creator ran for `key` (does not count as a request). Counted only while `key` is tracked. */
  recordRegeneration(key: string): void {
    const now = this.clock()
    if (now >= this.nextRotation) this.rotate(now)
    const tracked = this.current.index.get(key)
    if (tracked !== undefined) tracked.regenerations++
  }

  /** The hottest keys of the last `windowSeconds`, heaviest first, at most `limit` (default 20, capped at capacity). */
  top(limit: number = DEFAULT_LIMIT): HotKey[] {
    const n = Math.min(Math.floor(limit), this.capacity)
    if (!(n > 0)) return []
    const now = this.clock()
    if (now >= this.nextRotation) this.rotate(now)
    const elapsed = (now - this.currentStart) / this.windowMs
    const weight = elapsed <= 0 ? 1 : elapsed >= 1 ? 0 : 1 - elapsed
    const current = this.current
    const previous = this.previous

    const merged: HotKey[] = []
    for (let i = 0; i < current.size; i++) {
      const c = current.heap[i] as Candidate
      const p = previous.index.get(c.key)
      if (p !== undefined) {
        merged.push(
          hotKey(
            c.key,
            c.count + weight * p.count,
            c.hits + weight * p.hits,
            c.misses + weight * p.misses,
            c.regenerations + weight * p.regenerations,
          ),
        )
      } else {
        const before = weight > 0 ? weight * this.estimate(previous, c.hash) : 0
        merged.push(hotKey(c.key, c.count + before, c.hits, c.misses, c.regenerations))
      }
    }
    if (weight > 0) {
      for (let i = 0; i < previous.size; i++) {
        const p = previous.heap[i] as Candidate
        if (current.index.has(p.key)) continue
        const count = weight * p.count + this.estimate(current, p.hash)
        merged.push(hotKey(p.key, count, weight * p.hits, weight * p.misses, weight * p.regenerations))
      }
    }
    const result = merged.filter((k) => k.count > 0)
    result.sort((a, b) => b.count - a.count || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    if (result.length > n) result.length = n
    return result
  }

  /** Approximate bytes held: both sketches, the candidate records and the tracked key strings. */
  approximateBytes(): number {
    let bytes = 0
    for (const window of [this.current, this.previous]) {
      bytes += window.buckets.byteLength + window.heap.length * CANDIDATE_BYTES
      for (let i = 0; i < window.size; i++) bytes += STRING_HEADER_BYTES + 2 * (window.heap[i] as Candidate).key.length
    }
    return bytes
  }

  clear(): void {
    this.current.reset()
    this.previous.reset()
    this.currentStart = this.clock()
    this.nextRotation = this.currentStart + this.windowMs
  }

  private rotate(now: number): void {
    const elapsedWindows = Math.floor((now - this.currentStart) / this.windowMs)
    if (elapsedWindows >= 2) {
      // Nothing recorded for a whole window: both sub-windows are out of range.
      this.current.reset()
      this.previous.reset()
    } else {
      const recycled = this.previous
      this.previous = this.current
      this.current = recycled
      recycled.reset()
    }
    this.currentStart += Math.max(1, elapsedWindows) * this.windowMs
    this.nextRotation = this.currentStart + this.windowMs
  }

  /** A key that is not a candidate of `window`: update the sketch, and admit the key if it now beats the minimum. */
  private offer(window: SubWindow, key: string, hit: boolean, weight: number): void {
    const hash = hashKey(key)
    const estimate = this.add(window, hash, weight)
    const heap = window.heap
    let candidate: Candidate
    let evicted = false
    if (window.size < this.capacity) {
      const pos = window.size++
      const pooled = heap[pos]
      if (pooled === undefined) {
        candidate = { key, hash, count: 0, hits: 0, misses: 0, regenerations: 0, pos }
        heap.push(candidate)
      } else {
        candidate = pooled
        candidate.pos = pos
      }
    } else {
      const min = heap[0] as Candidate
      if (estimate <= min.count) return
      // Evict the minimum; keep its count in the sketch so that it can come back on its merits.
      this.writeBack(window, min)
      window.index.delete(min.key)
      candidate = min
      evicted = true
    }
    candidate.key = key
    candidate.hash = hash
    candidate.count = Math.max(estimate, weight)
    candidate.hits = hit ? weight : 0
    candidate.misses = hit ? 0 : weight
    candidate.regenerations = 0
    window.index.set(key, candidate)
    if (evicted) window.siftDown(0)
    else window.siftUp(candidate.pos)
  }

  /**
   * HeavyKeeper insertion of `weight` occurrences; returns the key's estimate (max count among its buckets). A
   * weighted occurrence decays a foreign bucket with one coin flip, by up to `weight`.
   */
  private add(window: SubWindow, hash: number, weight: number): number {
    const buckets = window.buckets
    const width = this.width
    const shift = this.indexShift
    let estimate = 0
    for (let row = 0; row < this.depth; row++) {
      const at = 2 * (row * width + (Math.imul(hash, ROW_MULTIPLIERS[row] as number) >>> shift))
      const count = buckets[at + 1] as number
      if (count === 0) {
        buckets[at] = hash
        buckets[at + 1] = weight
        if (estimate < weight) estimate = weight
      } else if (buckets[at] === hash) {
        const next = count + weight
        if (next <= 0xffff_ffff) buckets[at + 1] = next
        if (estimate < next) estimate = next
      } else if (count < DECAY_THRESHOLD.length && this.nextRandom() < (DECAY_THRESHOLD[count] as number)) {
        if (count <= weight) {
          buckets[at] = hash
          buckets[at + 1] = weight
          if (estimate < weight) estimate = weight
        } else {
          buckets[at + 1] = count - weight
        }
      }
    }
    return estimate
  }

  /** The key's count in `window`'s sketch, without updating it. */
  private estimate(window: SubWindow, hash: number): number {
    const buckets = window.buckets
    let estimate = 0
    for (let row = 0; row < this.depth; row++) {
      const at = 2 * (row * this.width + (Math.imul(hash, ROW_MULTIPLIERS[row] as number) >>> this.indexShift))
      const count = buckets[at + 1] as number
      if (buckets[at] === hash && count > estimate) estimate = count
    }
    return estimate
  }

  /** An evicted candidate's exact count goes back into its buckets (taking over weaker ones). */
  private writeBack(window: SubWindow, candidate: Candidate): void {
    const buckets = window.buckets
    for (let row = 0; row < this.depth; row++) {
      const at =
        2 * (row * this.width + (Math.imul(candidate.hash, ROW_MULTIPLIERS[row] as number) >>> this.indexShift))
      // Its own bucket, or a weaker key's bucket that it would have decayed away anyway.
      if ((buckets[at + 1] as number) < candidate.count) {
        buckets[at] = candidate.hash
        buckets[at + 1] = candidate.count
      }
    }
  }

  private nextRandom(): number {
    let x = this.random
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    this.random = x
    return x >>> 0
  }
}

function hotKey(key: string, count: number, hits: number, misses: number, regenerations: number): HotKey {
  const h = Math.round(hits)
  const m = Math.round(misses)
  return {
    key,
    count: Math.max(Math.round(count), h + m),
    hits: h,
    misses: m,
    regenerations: Math.round(regenerations),
  }
}

function positiveInteger(value: number | undefined, fallback: number, name: string, max: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) {
    throw new ValidationError(`hot keys ${name} must be an integer from 1 to ${max}; got ${String(value)}`)
  }
  return value
}
