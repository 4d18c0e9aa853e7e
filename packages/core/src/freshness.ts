import type { FreshnessTest, InvalidationState, RegionInvalidator } from './backends/api.js'
import { NO_VALUE, type CachedValue, type NoValue, type ValueExtensions } from './cached-value.js'
import { LocalInvalidator } from './invalidation.js'
import type { MissReason } from './telemetry/events.js'

/** What a read found, judged against expiry and invalidation. */
export type Lookup =
  | { readonly state: 'fresh'; readonly value: unknown; readonly stored: CachedValue }
  | {
      readonly state: 'stale'
      readonly value: unknown
      /** the value's creation time, epoch milliseconds (`-Infinity` when it claimed to be from the future) */
      readonly ct: number
      readonly reason: 'expired' | 'invalidated'
      readonly stored: CachedValue
    }
  | { readonly state: 'absent'; readonly reason: MissReason }

export type NotFresh = Exclude<Lookup, { state: 'fresh' }>
export type Stale = Extract<Lookup, { state: 'stale' }>

const ABSENT: Lookup = { state: 'absent', reason: 'absent' }
const HARD_INVALIDATED: Lookup = { state: 'absent', reason: 'invalidated' }

/**
 * How far in the future a creation time may lie (a writer's clock slightly ahead) and still be believed. Beyond
 * it the creation time is unknown, and the value is judged as old as can be: expired, and created before every
 * invalidation. Otherwise a host with a fast clock would write values that outlive `invalidate({ hard: true })`.
 */
export const FUTURE_CREATION_TOLERANCE_MS = 1000

/**
 * The freshness decision, in one place: whether a stored value is fresh, stale (expired, or created before a soft
 * invalidation of its region or of one of its tags) or absent (missing, of another format version, or created
 * before a hard invalidation). Invalidation is lazy, as in dogpile.cache: nothing is deleted when a region or a
 * tag is invalidated; each read compares the value's creation time with the marks.
 *
 * A value created in the same millisecond as an invalidation counts as invalidated: across processes both times
 * have millisecond resolution, and one extra regeneration is the safe side of the tie.
 */
export class Freshness implements FreshnessTest {
  /** Where the region's marks live; replaced when the region is configured with a backend that shares them. */
  invalidator: RegionInvalidator = new LocalInvalidator()
  /** The marks the hit path last saw (an `InvalidationState` is replaced, never changed, when marks move). */
  #marks: InvalidationState | undefined
  /** The later of those marks: a value created at or before it is not fresh, whichever mark it was. */
  #validAfter = Number.POSITIVE_INFINITY

  /**
   * @param clock the exact clock (epoch milliseconds): every decision but the hit path's expiry check
   * @param hitClock the hit path's clock, by default a coarse one (see clock.ts): it may lag `clock` by about a
   *   millisecond, never lead it
   */
  constructor(
    private readonly clock: () => number,
    private readonly reportError: (operation: string, error: unknown) => void,
    private readonly hitClock: () => number = clock,
  ) {}

  /**
   * The hit path's check, synchronous and allocation-free: true only when `stored` is fresh by expiry (or trusted
   * as a fail-safe value) and by the region's marks, and the marks of each of its tags are known here and older
   * than it. Anything else takes the full `lookup`.
   */
  isFresh(stored: CachedValue | NoValue, expirationMs: number): stored is CachedValue {
    return stored !== NO_VALUE && this.isFreshStamp(stored.ct, stored.ext, expirationMs)
  }

  /**
   * `isFresh` for a value kept as its parts (the memory backend's and the L1's store). Both invalidation marks are
   * one comparison with `#validAfter`, recomputed only when the marks change; expiry is one subtraction against the
   * hit clock. False (never a wrong true) when in doubt: a creation time from the future, the hit clock lagging.
   */
  isFreshStamp(ct: number, ext: ValueExtensions | undefined, expirationMs: number): boolean {
    const marks = this.invalidator.current()
    if (marks !== this.#marks) {
      this.#marks = marks
      this.#validAfter = Math.max(marks.hardAt, marks.softAt)
    }
    // `!(>)`: NaN (a value of another format version) is never fresh.
    if (!(ct > this.#validAfter)) return false
    const now = this.hitClock()
    if (ext === undefined) return now - ct <= expirationMs && ct <= now + FUTURE_CREATION_TOLERANCE_MS
    if (ct > now + FUTURE_CREATION_TOLERANCE_MS || !unexpired(ct, ext, now, expirationMs)) return false
    return ext.tags === undefined || this.#tagsAllow(ext.tags, ct)
  }

  /** Classifies a value whose tags' marks are known (see `lookup` for one whose tags may not be). */
  classify(stored: CachedValue | NoValue, expirationMs: number): Lookup {
    // NaN: a value of another format version (see CachedValue's constructor)
    if (stored === NO_VALUE || Number.isNaN(stored.ct)) return ABSENT
    const now = this.clock()
    // A creation time from the future is not believed: the value is as old as can be.
    const ct = stored.ct > now + FUTURE_CREATION_TOLERANCE_MS ? Number.NEGATIVE_INFINITY : stored.ct
    const marks = this.invalidator.current()
    if (ct <= marks.hardAt) return HARD_INVALIDATED
    let softAt = marks.softAt
    const tags = stored.ext?.tags
    if (tags !== undefined) {
      for (const tag of tags) {
        const tagMarks = this.invalidator.tagMarks?.(tag)
        if (tagMarks === undefined) continue
        if (ct <= tagMarks.hardAt) return HARD_INVALIDATED
        if (tagMarks.softAt > softAt) softAt = tagMarks.softAt
      }
    }
    if (ct <= softAt) return { state: 'stale', value: stored.payload, ct, reason: 'invalidated', stored }
    if (ct === Number.NEGATIVE_INFINITY || !unexpired(ct, stored.ext, now, expirationMs))
      return { state: 'stale', value: stored.payload, ct, reason: 'expired', stored }
    return { state: 'fresh', value: stored.payload, stored }
  }

  /**
   * Classifies a value read from the backend, after fetching the marks of any of its tags not known yet. A promise
   * only for a tagged value: the lock judges untagged values without a turn of the microtask queue.
   */
  lookup(stored: CachedValue | NoValue, expirationMs: number): Lookup | Promise<Lookup> {
    if (stored === NO_VALUE || stored.ext?.tags === undefined) return this.classify(stored, expirationMs)
    return this.loadTagsOf([stored]).then(() => this.classify(stored, expirationMs))
  }

  /** Whether a value was hard-invalidated (by its region or one of its tags), whatever its age. */
  isHardInvalidated(stored: CachedValue): boolean {
    return this.classify(stored, Number.POSITIVE_INFINITY) === HARD_INVALIDATED
  }

  /**
   * Makes sure the invalidator knows the marks of every tag these values carry: one batched fetch for the tags it
   * does not know. If the fetch fails, the values are judged without those marks (and the failure is reported):
   * availability over strictness.
   */
  async loadTagsOf(values: ReadonlyArray<CachedValue | NoValue>): Promise<void> {
    const invalidator = this.invalidator
    if (!invalidator.loadTags || !invalidator.tagMarks) return
    let unknown: Set<string> | undefined
    for (const value of values) {
      const tags = value === NO_VALUE ? undefined : value.ext?.tags
      if (tags === undefined) continue
      for (const tag of tags) {
        if (invalidator.tagMarks(tag) === undefined) (unknown ??= new Set()).add(tag)
      }
    }
    if (!unknown) return
    try {
      await invalidator.loadTags([...unknown])
    } catch (error) {
      this.reportError('loadTags', error)
    }
  }

  /** The hit path's tag check: true only when every tag's marks are known and older than the value. */
  #tagsAllow(tags: readonly string[], ct: number): boolean {
    const invalidator = this.invalidator
    if (!invalidator.tagMarks) return true
    for (const tag of tags) {
      const marks = invalidator.tagMarks(tag)
      if (marks === undefined || ct <= marks.hardAt || ct <= marks.softAt) return false
    }
    return true
  }
}

/**
 * Whether a value is within its expiration time (extended by its jitter), or trusted beyond it as a fail-safe
 * value until `trustedUntil`.
 */
function unexpired(ct: number, ext: ValueExtensions | undefined, now: number, expirationMs: number): boolean {
  if (ext === undefined) return now - ct <= expirationMs
  if (now - ct <= expirationMs + (ext.jitterMs ?? 0)) return true
  return ext.trustedUntil !== undefined && now <= ext.trustedUntil
}
