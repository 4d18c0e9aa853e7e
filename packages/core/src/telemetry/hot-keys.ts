/**
 * Hot keys: a bounded top-K of the most requested keys of a region over a sliding time window, each count with a
 * published error bound.
 *
 * Algorithm: HeavyKeeper (Gong et al., "HeavyKeeper: An Accurate Algorithm for Finding Top-k Elephant Flows",
 * USENIX ATC 2018). A `depth × width` array of buckets holds (fingerprint, count) pairs. A key hashes to one
 * bucket per row: an empty bucket or one holding the key's fingerprint is incremented; a bucket held by another
 * key is decremented with probability `b^-count` (exponential-weakening decay, `b = 1.08`) and taken over when it
 * reaches zero. Small keys therefore cannot hold a bucket against a heavy one, while a heavy key's count is
 * almost never decayed, so the sketch's estimate (the largest count among the key's buckets) is close to the
 * true count for the heavy keys and the sketch needs no per-key memory at all. Next to it a min-heap of
 * `capacity` candidates holds the key strings; a key enters it when its estimate beats the heap's minimum, and is
 * counted exactly from then on. Millions of one-off keys only ever touch the fixed-size sketch, so memory stays
 * bounded.
 *
 * What the sketch does not know: HeavyKeeper's estimate is a lower bound of a key's requests (decay only removes
 * counts). Each bucket also keeps a Count-Min counter (Cormode & Muthukrishnan, 2005) of every request that maps to
 * it, so the smallest of a key's counters is an upper bound. When a key enters the candidate set, the gap between
 * the two is all that is unknown about its count, and it stays fixed while the key is tracked: that is the hard
 * part of `HotKey.error`.
 *
 * Hit sampling that adapts to the rate: the hit path decrements a countdown, and only the hit that brings it to
 * zero is recorded. A quiet region records every hit: up to `exactHitsPerSecond` hits in a second. Past that, the
 * sampling probability `2^-level` halves every `exactHitsPerSecond / 16` samples, so each level covers twice the
 * hits of the one before and a burst of any size costs a logarithmic number of samples; and each second starts at
 * the level that would have kept the previous second within `exactHitsPerSecond` samples, so under a steady load
 * the tracker records between half and all of that many hits a second, whatever the rate. Every hit is sampled
 * independently (geometric gaps between samples, so no pattern of keys can alias with the sampling) and a sample
 * counts for `2^level` hits, so the counts are unbiased (Horvitz-Thompson). Each candidate sums `w(w - 1)` over its
 * samples of weight `w`, the unbiased estimate of its sampling variance, from which Bernstein's inequality gives
 * the statistical part of `HotKey.error`. Misses and regenerations are rare and always recorded.
 *
 * Time: with the default clock the tracker reads `performance.now()` once a second (on Corral's shared coarse
 * tick) and in `top()`, so a recorded hit costs no clock read; a request lands in the sub-window that was current
 * at the last tick, at most about a second late. An injected `clock` (tests, simulations) is read on every record.
 *
 * Sliding window: two sub-windows of `windowSeconds` each (the current one and the previous one), each with its
 * own sketch and candidate set. `top()` merges both, weighting the previous sub-window by the share of it that
 * still lies inside the last `windowSeconds` (the usual sliding-window-counter interpolation), so a steadily
 * requested key reports about `rate × windowSeconds` at any time, and a key that stops being requested fades out
 * and is gone at most two windows later.
 *
 * Keys are stored as given (not truncated): the caller passes the key it wants displayed.
 */
import { ValidationError } from '../errors.js'
import { currentTick } from './tick.js'

export interface HotKey {
  key: string
  /**
   * Requests (hits + misses) in the window: the current sub-window's plus the previous sub-window's weighted by the
   * share of it still inside the last `windowSeconds`. An estimate; see `error`.
   */
  count: number
  /**
   * How far `count` can be from the true count: the number the same definition gives with every request of the key
   * counted exactly lies within `count ± error`. `0` means the count is exact. The sum of two parts:
   * - the requests the sketch could not attribute to the key before it was tracked: a hard bound (barring a
   *   collision of 32-bit key hashes);
   * - when hits were sampled (more than `exactHitsPerSecond` in a second), Bernstein's inequality for the sampling
   *   error at 99.9% confidence, `sqrt(2·V·ln 2000) + (2/3)·(w - 1)·ln 2000`, where `V` is the variance estimated
   *   from the samples and `w` the largest sample weight: exceeded in about one count in a thousand or fewer.
   * Plus the rounding of `count` to an integer.
   */
  error: number
  /** Hits (fresh or stale values served) counted while the key was tracked; estimated like `count` when sampled. */
  hits: number
  /** Misses counted while the key was tracked. */
  misses: number
  /** Regenerations while the key was tracked (not requests). */
  regenerations: number
}

export interface HotKeyTrackerOptions {
  /** How many keys are tracked (the k of top-k). Default 50. */
  capacity?: number
  /** Length of the sliding window in seconds. Default 60. */
  windowSeconds?: number
  /** Buckets per sketch row, rounded up to a power of two. Default 1024. */
  width?: number
  /** Sketch rows (1-8). Default 2. */
  depth?: number
  /**
   * Hits a second recorded one by one: while a region serves at most this many hits a second, every hit is recorded
   * and the counts are exact; past it, hits are sampled, and under a steady load at most this many are recorded a
   * second. Default 10000.
   */
  exactHitsPerSecond?: number
  /** Milliseconds; injectable for tests. Default `performance.now`, read about once a second. */
  clock?: () => number
}

const DEFAULT_CAPACITY = 50
const DEFAULT_WINDOW_SECONDS = 60
const DEFAULT_WIDTH = 1024
const DEFAULT_DEPTH = 2
const DEFAULT_EXACT_HITS_PER_SECOND = 10_000
const DEFAULT_LIMIT = 20

/**
 * `ln(2 / δ)` for Bernstein's inequality with δ = 10^-3: the sampling part of `HotKey.error` is exceeded with
 * probability at most 0.1% (given the variance, which is estimated from the samples).
 */
const BERNSTEIN_LOG = Math.log(2 / 1e-3)
/** Past a second's budget, the sampling level rises by one every `exactHitsPerSecond / ESCALATION_DIVISOR` samples. */
const ESCALATION_DIVISOR = 16
/** Lowest sampling probability: 2^-MAX_LEVEL, one hit in 16 million. */
const MAX_LEVEL = 24
/** `ln(1 - 2^-level)`, for drawing the geometric gap to the next sampled hit. */
const LOG_KEEP = Float64Array.from({ length: MAX_LEVEL + 1 }, (_, level) => Math.log(1 - 2 ** -level))

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
const MAX_COUNT = 0xffff_ffff

/** Odd multipliers, one per row, for multiplicative hashing of the 32-bit key hash into a row index. */
const ROW_MULTIPLIERS = [
  0x9e3779b1, 0x85ebca77, 0xc2b2ae3d, 0x27d4eb2f, 0x165667b1, 0xd3a2646d, 0xfd7046c5, 0xb55a4f09,
] as const
const MAX_DEPTH = ROW_MULTIPLIERS.length
const MAX_WIDTH = 1 << 20

/** 32-bit fields per sketch bucket: fingerprint, HeavyKeeper count, Count-Min counter. */
const BUCKET_FIELDS = 3
/** Estimated bytes of one candidate record (object header + eleven fields) plus its `Map` entry. */
const CANDIDATE_BYTES = 80 + 24
/** Estimated bytes of a string header; the characters are counted as 2 bytes each (an upper bound). */
const STRING_HEADER_BYTES = 16

let seeds = 0x2545f491
/** Seeds for the trackers' generators: a Weyl sequence (never 0, all distinct), avalanched like the key hashes. */
function nextSeed(): number {
  seeds = (seeds + 0x9e3779b9) | 0
  let h = Math.imul(seeds ^ (seeds >>> 16), 0x85ebca6b)
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35)
  return (h ^ (h >>> 16)) | 0 || 1
}

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
  /** `count` when the key entered the candidate set (the sketch's lower bound then). */
  admittedCount: number
  /** Upper minus lower bound of the key's requests when it entered: the part of `count` that is unknown. */
  slack: number
  /** Estimated variance of `count` from hit sampling: Σ w(w - 1) over samples of weight w (bounded before entry). */
  variance: number
  /** The largest sample weight that went into `count` (before entry: the sub-window's largest). */
  maxWeight: number
  /** Position in the heap array. */
  pos: number
}

/** One sub-window: a HeavyKeeper sketch with Count-Min counters, plus a min-heap (by count) of candidates. */
class SubWindow {
  /**
   * `[fingerprint, count, total]` triples, row-major: bucket `i` of row `r` starts at `3 × (r × width + i)`, so a
   * bucket is read from one cache line. `count` is HeavyKeeper's; `total` is a Count-Min counter: the (weighted)
   * requests of every key that maps to the bucket.
   */
  readonly buckets: Uint32Array
  readonly index = new Map<string, Candidate>()
  /** Min-heap in `heap[0 .. size)`; records past `size` are kept for reuse. */
  readonly heap: Candidate[] = []
  size = 0
  /** The largest weight recorded in this sub-window: 1 unless hits were sampled. */
  maxWeight = 1

  constructor(width: number, depth: number) {
    this.buckets = new Uint32Array(BUCKET_FIELDS * width * depth)
  }

  reset(): void {
    this.buckets.fill(0)
    this.index.clear()
    // Keep the records for reuse but drop the key strings.
    for (let i = 0; i < this.size; i++) (this.heap[i] as Candidate).key = ''
    this.size = 0
    this.maxWeight = 1
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
 * Tracks the hottest keys of one region. `hit` is meant for the cache hit path: one decrement when the hit is not
 * sampled, otherwise O(1) for tracked keys and O(key length + depth) for the others. Memory is bounded by the
 * sketches plus `capacity` key strings per sub-window, whatever the number of distinct keys.
 *
 * Accuracy: `count` is the sketch's lower bound when the key entered the candidate set plus its requests since
 * then, counted exactly (or, for hits beyond `exactHitsPerSecond` a second, estimated without bias from samples);
 * `error` bounds the difference from the true count (see `HotKey.error`). `hits`, `misses` and `regenerations`
 * are counted while a key is a candidate, so `hits + misses <= count`. The previous sub-window's numbers are
 * weighted by how much of it still lies inside the window, so all numbers are estimates of the last
 * `windowSeconds`.
 */
export class HotKeyTracker {
  readonly capacity: number
  readonly windowSeconds: number
  /** Buckets per sketch row (a power of two). */
  readonly width: number
  /** Sketch rows. */
  readonly depth: number
  readonly exactHitsPerSecond: number

  private readonly clock: () => number
  /** No clock injected: read it once per coarse tick instead of on every record. */
  private readonly coarse: boolean
  private coarseTick = -1
  private coarseNow = 0
  private readonly windowMs: number
  /** `32 - log2(width)`: the row index is the top bits of `hash × ROW_MULTIPLIERS[row]`. */
  private readonly indexShift: number
  private current: SubWindow
  private previous: SubWindow
  private currentStart: number
  private nextRotation: number
  /**
   * xorshift32 state for the decay coin flips and the sampling gaps. Each tracker gets its own stream (two regions
   * fed the same traffic sample different hits), from a per-process sequence, so a test run is reproducible.
   */
  private random = nextSeed()
  /** Scratch: the upper bound from the last `add` or `bounds`. */
  private upper = 0

  // Hit sampling (see the file header). The hit path only decrements `hitsUntilSample`.
  private hitsUntilSample = 1
  /** What the next sampled hit stands for: 2^level at the time its gap was drawn. */
  private sampleWeight = 1
  private level = 0
  private samplesLeft: number
  private readonly escalationSamples: number
  private second = Number.NaN
  /** Estimated hits of the current second: the sum of its samples' weights. */
  private secondHits = 0

  constructor(options: HotKeyTrackerOptions = {}) {
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
    this.exactHitsPerSecond = positiveInteger(
      options.exactHitsPerSecond,
      DEFAULT_EXACT_HITS_PER_SECOND,
      'exactHitsPerSecond',
      2 ** 30,
    )
    this.samplesLeft = this.exactHitsPerSecond
    this.escalationSamples = Math.max(1, Math.floor(this.exactHitsPerSecond / ESCALATION_DIVISOR))
    if (options.clock !== undefined && typeof options.clock !== 'function') {
      throw new ValidationError('hot keys clock must be a function returning milliseconds')
    }
    this.coarse = options.clock === undefined
    this.clock = options.clock ?? (() => performance.now())
    this.current = new SubWindow(this.width, this.depth)
    this.previous = new SubWindow(this.width, this.depth)
    this.currentStart = this.clock()
    this.coarseNow = this.currentStart
    this.nextRotation = this.currentStart + this.windowMs
  }

  /**
   * A served read (hit or stale) of `key`, from the hit path. Every hit is recorded while the region serves at
   * most `exactHitsPerSecond` hits a second; beyond that, hits are sampled at a rate that adapts to the load, and
   * each sample stands for `2^level` hits.
   */
  hit(key: string): void {
    if (--this.hitsUntilSample > 0) return
    this.sampleHit(key)
  }

  /**
   * One cache read of `key`, recorded exactly: a hit (fresh or stale value served) or a miss. Pass the key as it
   * should be displayed; it is stored as given while the key is tracked. `weight` > 1 records a sampled read that
   * stands for that many reads (its sampling variance is counted in `error`).
   */
  record(key: string, result: 'hit' | 'miss', weight = 1): void {
    const now = this.now()
    this.observeSecond(now)
    this.recordAt(now, key, result === 'hit', weight)
  }

  /** The creator ran for `key` (does not count as a request). Counted only while `key` is tracked. */
  recordRegeneration(key: string): void {
    const now = this.now()
    this.observeSecond(now)
    if (now >= this.nextRotation) this.rotate(now)
    const tracked = this.current.index.get(key)
    if (tracked !== undefined) tracked.regenerations++
  }

  /** The hottest keys of the last `windowSeconds`, heaviest first, at most `limit` (default 20, capped at capacity). */
  top(limit: number = DEFAULT_LIMIT): HotKey[] {
    const n = Math.min(Math.floor(limit), this.capacity)
    if (!(n > 0)) return []
    const now = this.clock()
    if (this.coarse && now > this.coarseNow) this.coarseNow = now
    this.observeSecond(now)
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
            c.slack + weight * p.slack,
            c.variance + weight * weight * p.variance,
            Math.max(c.maxWeight - 1, weight * (p.maxWeight - 1)),
            c.hits + weight * p.hits,
            c.misses + weight * p.misses,
            c.regenerations + weight * p.regenerations,
          ),
        )
      } else if (weight > 0) {
        // Not tracked in the previous sub-window: its requests there are known only within the sketch's bounds.
        const lower = this.bounds(previous, c.hash)
        const upper = this.upper
        merged.push(
          hotKey(
            c.key,
            c.count + weight * lower,
            c.slack + weight * (upper - lower),
            c.variance + weight * weight * (previous.maxWeight - 1) * upper,
            Math.max(c.maxWeight - 1, weight * (previous.maxWeight - 1)),
            c.hits,
            c.misses,
            c.regenerations,
          ),
        )
      } else {
        merged.push(hotKey(c.key, c.count, c.slack, c.variance, c.maxWeight - 1, c.hits, c.misses, c.regenerations))
      }
    }
    if (weight > 0) {
      for (let i = 0; i < previous.size; i++) {
        const p = previous.heap[i] as Candidate
        if (current.index.has(p.key)) continue
        const lower = this.bounds(current, p.hash)
        const upper = this.upper
        merged.push(
          hotKey(
            p.key,
            weight * p.count + lower,
            weight * p.slack + (upper - lower),
            weight * weight * p.variance + (current.maxWeight - 1) * upper,
            Math.max(weight * (p.maxWeight - 1), current.maxWeight - 1),
            weight * p.hits,
            weight * p.misses,
            weight * p.regenerations,
          ),
        )
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
    this.coarseNow = this.currentStart
    this.nextRotation = this.currentStart + this.windowMs
  }

  /** The hit whose turn it is to be recorded: adapt the sampling level, draw the next gap, record. */
  private sampleHit(key: string): void {
    const weight = this.sampleWeight
    const now = this.now()
    const second = this.secondOf(now)
    if (second !== this.second) this.startSecond(second)
    this.secondHits += weight
    if (--this.samplesLeft <= 0 && this.level < MAX_LEVEL) {
      // Busier than the previous second: past its budget, the probability halves every few samples, so each level
      // covers twice the hits of the one before and a burst of any size costs a logarithmic number of samples.
      this.level++
      this.samplesLeft = this.escalationSamples
    }
    this.drawGap()
    this.recordAt(now, key, true, weight)
  }

  /**
   * Seen from `record`, `recordRegeneration` and `top`: a new second restarts the sampling at the level the last
   * one calls for, at once. Without this, the gap drawn under a load that has since stopped would sample the first
   * hits after it at the old rate. Redrawing the gap keeps the estimates unbiased, since each hit is sampled
   * independently and the decision depends on the time only.
   */
  private observeSecond(now: number): void {
    const second = this.secondOf(now)
    if (second === this.second) return
    this.startSecond(second)
    this.drawGap()
  }

  private secondOf(now: number): number {
    return this.coarse ? currentTick() : Math.floor(now / 1000)
  }

  /** A new second: start at the level that would have kept the previous second within `exactHitsPerSecond`. */
  private startSecond(second: number): void {
    const previousHits = second === this.second + 1 ? this.secondHits : 0
    this.second = second
    this.secondHits = 0
    this.samplesLeft = this.exactHitsPerSecond
    let level = 0
    while (level < MAX_LEVEL && previousHits > this.exactHitsPerSecond * 2 ** level) level++
    this.level = level
  }

  /** How many hits until the next sampled one, and what that one will stand for. */
  private drawGap(): void {
    const level = this.level
    if (level === 0) {
      this.sampleWeight = 1
      this.hitsUntilSample = 1
      return
    }
    // Geometric gap: each hit is sampled independently with probability 2^-level, so each sample stands for
    // 2^level hits whatever the pattern of keys (a fixed stride would alias with periodic traffic).
    this.sampleWeight = 1 << level
    const uniform = this.nextRandom() / 0x1_0000_0000 // in (0, 1): xorshift never returns 0
    // `| 0` keeps the countdown a small integer (the longest gap at MAX_LEVEL is below 2^31).
    this.hitsUntilSample = (1 + Math.floor(Math.log(uniform) / (LOG_KEEP[level] as number))) | 0
  }

  /** The time a record is attributed to: the injected clock, or the default clock as of the last coarse tick. */
  private now(): number {
    if (!this.coarse) return this.clock()
    const tick = currentTick()
    if (tick !== this.coarseTick) {
      this.coarseTick = tick
      const now = this.clock()
      if (now > this.coarseNow) this.coarseNow = now
    }
    return this.coarseNow
  }

  private recordAt(now: number, key: string, hit: boolean, weight: number): void {
    if (now >= this.nextRotation) this.rotate(now)
    const window = this.current
    if (weight > window.maxWeight) window.maxWeight = weight
    const tracked = window.index.get(key)
    if (tracked !== undefined) {
      tracked.count += weight
      if (hit) tracked.hits += weight
      else tracked.misses += weight
      if (weight > 1) {
        tracked.variance += weight * (weight - 1)
        if (weight > tracked.maxWeight) tracked.maxWeight = weight
      }
      window.siftDown(tracked.pos)
      return
    }
    this.offer(window, key, hit, weight)
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
    const upper = this.upper
    const heap = window.heap
    let candidate: Candidate
    let evicted = false
    if (window.size < this.capacity) {
      const pos = window.size++
      const pooled = heap[pos]
      if (pooled === undefined) {
        candidate = {
          key,
          hash,
          count: 0,
          hits: 0,
          misses: 0,
          regenerations: 0,
          admittedCount: 0,
          slack: 0,
          variance: 0,
          maxWeight: 1,
          pos,
        }
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
    // The sketch knows the key's requests so far only within [estimate, upper]: count the lower bound and keep
    // the gap as slack. (This request is in both bounds; `estimate` is 0 when every row is held by another key.)
    const count = Math.max(estimate, weight)
    candidate.key = key
    candidate.hash = hash
    candidate.count = count
    candidate.admittedCount = count
    candidate.slack = upper - count
    candidate.variance = (window.maxWeight - 1) * upper
    candidate.maxWeight = window.maxWeight
    candidate.hits = hit ? weight : 0
    candidate.misses = hit ? 0 : weight
    candidate.regenerations = 0
    window.index.set(key, candidate)
    if (evicted) window.siftDown(0)
    else window.siftUp(candidate.pos)
  }

  /**
   * HeavyKeeper insertion of `weight` occurrences, plus the Count-Min update; returns the key's estimate (max count
   * among its buckets, a lower bound) and leaves its upper bound (min total among its buckets) in `this.upper`. A
   * weighted occurrence decays a foreign bucket with one coin flip, by up to `weight`.
   */
  private add(window: SubWindow, hash: number, weight: number): number {
    const buckets = window.buckets
    const width = this.width
    const shift = this.indexShift
    let estimate = 0
    let upper = MAX_COUNT
    for (let row = 0; row < this.depth; row++) {
      const at = BUCKET_FIELDS * (row * width + (Math.imul(hash, ROW_MULTIPLIERS[row] as number) >>> shift))
      // Count-Min: every request of every key that maps here, so the smallest total bounds the key's requests.
      const total = Math.min((buckets[at + 2] as number) + weight, MAX_COUNT)
      buckets[at + 2] = total
      if (total < upper) upper = total
      const count = buckets[at + 1] as number
      if (count === 0) {
        buckets[at] = hash
        buckets[at + 1] = weight
        if (estimate < weight) estimate = weight
      } else if (buckets[at] === hash) {
        const next = count + weight
        if (next <= MAX_COUNT) buckets[at + 1] = next
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
    this.upper = upper
    return estimate
  }

  /** The key's bounds in `window`'s sketch, without updating it: returns the lower one, leaves the upper in `this.upper`. */
  private bounds(window: SubWindow, hash: number): number {
    const buckets = window.buckets
    let lower = 0
    let upper = MAX_COUNT
    for (let row = 0; row < this.depth; row++) {
      const at =
        BUCKET_FIELDS * (row * this.width + (Math.imul(hash, ROW_MULTIPLIERS[row] as number) >>> this.indexShift))
      const count = buckets[at + 1] as number
      if (buckets[at] === hash && count > lower) lower = count
      const total = buckets[at + 2] as number
      if (total < upper) upper = total
    }
    this.upper = upper
    return lower
  }

  /**
   * An evicted candidate goes back into the sketch: its requests while tracked into the totals (they never reached
   * the sketch), and its count into its buckets (taking over weaker ones), so it can come back on its merits.
   */
  private writeBack(window: SubWindow, candidate: Candidate): void {
    const buckets = window.buckets
    const trackedRequests = candidate.count - candidate.admittedCount
    for (let row = 0; row < this.depth; row++) {
      const at =
        BUCKET_FIELDS *
        (row * this.width + (Math.imul(candidate.hash, ROW_MULTIPLIERS[row] as number) >>> this.indexShift))
      buckets[at + 2] = Math.min((buckets[at + 2] as number) + trackedRequests, MAX_COUNT)
      // Its own bucket, or a weaker key's bucket that it would have decayed away anyway.
      if ((buckets[at + 1] as number) < candidate.count) {
        buckets[at] = candidate.hash
        buckets[at + 1] = Math.min(candidate.count, MAX_COUNT)
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

/**
 * A reported entry. `slack`: what the sketch could not attribute (a hard bound); `variance` and `maxDeviation`: the
 * estimated variance of the sampled part and the most one hit can move the estimate (`w - 1` for samples of weight
 * `w`, scaled like the counts), for Bernstein's inequality. `count` is rounded (and never below `hits + misses`), so
 * the rounding goes into `error` too: the bound holds for the reported number.
 */
function hotKey(
  key: string,
  count: number,
  slack: number,
  variance: number,
  maxDeviation: number,
  hits: number,
  misses: number,
  regenerations: number,
): HotKey {
  const h = Math.round(hits)
  const m = Math.round(misses)
  const reported = Math.max(Math.round(count), h + m)
  const sampling =
    maxDeviation > 0 ? Math.sqrt(2 * variance * BERNSTEIN_LOG) + (2 / 3) * maxDeviation * BERNSTEIN_LOG : 0
  const bound = slack + sampling + Math.abs(reported - count)
  return {
    key,
    count: reported,
    // The epsilon absorbs floating-point noise from the weighting; Math.max turns -0 into 0.
    error: Math.max(0, Math.ceil(bound - 1e-9)),
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
