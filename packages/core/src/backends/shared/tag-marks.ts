/**
 * The local side of tag invalidation for backends shared by several processes (Redis, memcached): a bounded
 * mirror of the tag marks kept on the server, which answers the region's synchronous `tagMarks(tag)` on the hit
 * path, and knows when its answers can no longer be trusted.
 */
import { LRUCache } from 'lru-cache'
import { NOT_INVALIDATED } from '../../invalidation.js'
import type { InvalidationState } from '../api.js'

/** How many tags a process mirrors. Beyond it the least recently read are forgotten (and reloaded when needed). */
export const TAG_MIRROR_SIZE = 50_000

/**
 * How much longer a tag mark lives on the server than the values it can invalidate. A value created just before
 * a mark may reach the server a little after it (a slow write), and its creation time comes from its writer's
 * clock: the grace covers both (write delays and clock skew between hosts well under a minute).
 */
export const TAG_MARK_GRACE_MS = 60_000

/** The most tags fetched by one command (MGET, a batch of pipelined GETs). */
export const TAG_FETCH_CHUNK = 1000

interface Entry {
  marks: InvalidationState
  /** the mirror's trust epoch when the entry was loaded; -1: known locally only, never trusted */
  epoch: number
  /** `performance.now()` when the server's marks were last read (or received) */
  loadedAt: number
}

/**
 * Marks of many tags, mirrored from the server.
 *
 * An entry is trusted (returned by `marks`) for `trustMs` after it was read from the server or received as a
 * notification, and only within the current epoch: `distrust()` (a notification channel that dropped or was just
 * established) starts a new one, so every entry is read again before it is used. Untrusted or unknown tags read as
 * `undefined`, which makes the region load them (`load`), in one batch per read.
 *
 * Marks only rise: what the server says is max-merged with what the mirror knows. When the mirror knows more than
 * the server (a write that failed during an outage, a mark the server evicted) and the mark still matters, the tag
 * is listed as unsynced so that the owner writes it back.
 */
export class TagMirror {
  readonly #entries: LRUCache<string, Entry>
  readonly #used = new Set<string>()
  readonly #unsynced = new Set<string>()
  readonly #loading = new Map<string, Promise<void>>()
  readonly #max: number
  #epoch = 0

  /**
   * @param trustMs how long a mark read from the server is used without reading it again
   * @param markTtlMs how long a mark lives on the server after its latest time (`undefined`: forever); past that,
   *   no value it could invalidate is left, so a local mark the server no longer has is not written back
   */
  constructor(
    readonly trustMs: number,
    private readonly markTtlMs: () => number | undefined,
    max = TAG_MIRROR_SIZE,
  ) {
    this.#max = max
    this.#entries = new LRUCache({ max })
  }

  /** The hit path: the tag's marks when they are trusted, else `undefined`. */
  marks(tag: string): InvalidationState | undefined {
    const entry = this.#entries.get(tag)
    if (entry === undefined || entry.epoch !== this.#epoch || performance.now() - entry.loadedAt > this.trustMs)
      return undefined
    if (this.#used.size < this.#max) this.#used.add(tag)
    return entry.marks
  }

  /** What the mirror knows of a tag, trusted or not. */
  peek(tag: string): InvalidationState | undefined {
    return this.#entries.peek(tag)?.marks
  }

  /** Records the server's marks for `tag`, read or received just now (merged with what the mirror knew). */
  record(tag: string, remote: InvalidationState): void {
    const known = this.#entries.peek(tag)?.marks
    let hardAt = remote.hardAt
    let softAt = remote.softAt
    if (known !== undefined && (known.hardAt > hardAt || known.softAt > softAt)) {
      const ttl = this.markTtlMs()
      // A local mark past its lifetime invalidates nothing any more: let the server's answer stand.
      if (ttl === undefined || Math.max(known.hardAt, known.softAt) + ttl > Date.now()) {
        hardAt = Math.max(hardAt, known.hardAt)
        softAt = Math.max(softAt, known.softAt)
        this.#unsynced.add(tag)
      }
    }
    this.#entries.set(tag, { marks: { hardAt, softAt }, epoch: this.#epoch, loadedAt: performance.now() })
  }

  /**
   * Records marks another process published, for a tag the mirror holds: they are the server's marks after the
   * change. Tags this process does not hold are left out (it loads them when it needs them), so a stream of
   * invalidations of tags it never reads does not evict the ones it does.
   */
  recordIfKnown(tag: string, remote: InvalidationState): void {
    if (this.#entries.has(tag)) this.record(tag, remote)
  }

  /** Records a mark made in this process, before the server has it: it counts at once if the tag is trusted. */
  applyLocal(tag: string, hard: boolean, at: number): void {
    const entry = this.#entries.peek(tag)
    if (entry === undefined) {
      // The tag's other mark is unknown: keep this one, but load the tag before it is used.
      this.#entries.set(tag, {
        marks: hard ? { hardAt: at, softAt: 0 } : { hardAt: 0, softAt: at },
        epoch: -1,
        loadedAt: 0,
      })
      return
    }
    const { hardAt, softAt } = entry.marks
    entry.marks = hard ? { hardAt: Math.max(hardAt, at), softAt } : { hardAt, softAt: Math.max(softAt, at) }
  }

  /** Forgets that any entry was trusted: each is read from the server again before it is used. */
  distrust(): void {
    this.#epoch++
  }

  /** Loads `tags` with `fetch`, joining loads of the same tags already in flight (one fetch per tag at a time). */
  async load(tags: readonly string[], fetch: (tags: readonly string[]) => Promise<void>): Promise<void> {
    const waits = new Set<Promise<void>>()
    const missing = new Set<string>()
    for (const tag of tags) {
      const pending = this.#loading.get(tag)
      if (pending) waits.add(pending)
      else missing.add(tag)
    }
    if (missing.size > 0) {
      const fresh = [...missing]
      const loading = fetch(fresh).finally(() => {
        for (const tag of fresh) if (this.#loading.get(tag) === loading) this.#loading.delete(tag)
      })
      for (const tag of fresh) this.#loading.set(tag, loading)
      waits.add(loading)
    }
    await Promise.all(waits)
  }

  /** The tags read through `marks` since the last call: the ones worth keeping fresh. */
  takeUsed(): string[] {
    const used = [...this.#used]
    this.#used.clear()
    return used
  }

  /** Tags whose local marks the server may lack, with those marks (each listed once until it fails again). */
  takeUnsynced(): Array<readonly [string, InvalidationState]> {
    const out: Array<readonly [string, InvalidationState]> = []
    for (const tag of this.#unsynced) {
      const marks = this.#entries.peek(tag)?.marks
      if (marks) out.push([tag, marks])
    }
    this.#unsynced.clear()
    return out
  }

  markUnsynced(tags: readonly string[]): void {
    for (const tag of tags) this.#unsynced.add(tag)
  }

  get size(): number {
    return this.#entries.size
  }
}

/** A tag's marks as stored on the server: `"<hardAt>,<softAt>"` (epoch milliseconds as JavaScript prints them). */
export function formatTagMarks(marks: InvalidationState): string {
  return `${marks.hardAt},${marks.softAt}`
}

/** Parses `formatTagMarks` text; anything else reads as "not invalidated". */
export function parseTagMarks(text: string | null | undefined): InvalidationState {
  if (!text) return NOT_INVALIDATED
  const comma = text.indexOf(',')
  if (comma < 0) return NOT_INVALIDATED
  const hard = Number(text.slice(0, comma))
  const soft = Number(text.slice(comma + 1))
  return { hardAt: Number.isFinite(hard) ? hard : 0, softAt: Number.isFinite(soft) ? soft : 0 }
}

/** `items` in slices of at most `size`. */
export function chunks<T>(items: readonly T[], size = TAG_FETCH_CHUNK): T[][] {
  const out: T[][] = []
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size))
  return out
}
