/**
 * The invalidator of a backend shared by several processes (Redis, memcached): region and tag marks kept on the
 * server, mirrored in each process so that the hit path reads them synchronously, re-read by a poller, and
 * written back when this process knows marks the server lost. Subclasses supply the server side (how marks are
 * read, max-merged and fetched); how far a mirrored mark is trusted is decided here, once.
 */
import { LocalInvalidator } from '../../invalidation.js'
import type { InvalidationState, RegionInvalidator } from '../api.js'
import { Poller } from './distributed.js'
import { TagMirror, chunks } from './tag-marks.js'

/** What a mirrored invalidator needs from the backend that created it. */
export interface MirroredInvalidatorHost {
  /** How often the marks are re-read from the server. */
  readonly invalidationPollIntervalMs: number
  /** How long a tag mark lives on the server after its latest time (`undefined`: forever). */
  readonly tagMarkTtlMs: number | undefined
  /** Reports a background failure (rate-limited by the backend). */
  reportBackground(operation: string, error: unknown): void
}

/** The outcome of writing tag marks: the tags whose marks the server may lack, and why. */
export interface TagWriteResult {
  readonly failed: readonly string[]
  readonly error?: unknown
}

export abstract class MirroredInvalidator implements RegionInvalidator {
  /** The region marks in force here: the server's, max-merged with the ones made in this process. */
  protected readonly local = new LocalInvalidator()
  protected readonly tags: TagMirror
  /** Resolves once the marks have been read for the first time (set by the subclass's constructor). */
  abstract readonly loaded: Promise<void>
  #poller: Poller | undefined
  #stopped = false

  /**
   * @param tagTrustMs how long a tag mark read from the server is used without reading it again: at least the
   *   poll interval, so that the tags in use are re-read (by the poller) before their marks run out
   */
  constructor(
    protected readonly host: MirroredInvalidatorHost,
    tagTrustMs: number,
  ) {
    this.tags = new TagMirror(tagTrustMs, () => host.tagMarkTtlMs)
  }

  // ------------------------------------------------------------ the server side, per backend

  /** Records one region mark on the server (max-merged there) and applies what the server answers. */
  protected abstract writeMark(hard: boolean, at: number): Promise<void>
  /** The region marks the server holds now. */
  protected abstract readMarks(): Promise<InvalidationState>
  /** Writes back local region marks newer than the server's (`remote`): the server lost them, or never got them. */
  protected abstract writeBackMarks(local: InvalidationState, remote: InvalidationState): Promise<void>
  /** Reads the marks of `tags` from the server and records them (absent tags as not invalidated) in `this.tags`. */
  protected abstract fetchTags(tags: readonly string[]): Promise<void>
  /** Max-merges tag marks into the server and records the merged marks. Never throws: failures are returned. */
  protected abstract writeTagMarks(
    entries: ReadonlyArray<readonly [string, InvalidationState]>,
  ): Promise<TagWriteResult>

  // ------------------------------------------------------------ RegionInvalidator

  current(): InvalidationState {
    return this.local.current()
  }

  async invalidate(hard: boolean, at: number): Promise<void> {
    this.local.apply(hard, at)
    await this.writeMark(hard, at)
  }

  tagMarks(tag: string): InvalidationState | undefined {
    return this.tags.marks(tag)
  }

  async invalidateTags(tags: readonly string[], hard: boolean, at: number): Promise<void> {
    for (const tag of tags) this.tags.applyLocal(tag, hard, at)
    const marks = hard ? { hardAt: at, softAt: 0 } : { hardAt: 0, softAt: at }
    const { failed, error } = await this.writeTagMarks(tags.map((tag) => [tag, marks] as const))
    if (failed.length > 0) {
      // Kept here, and written back at a later poll once the server answers.
      this.tags.markUnsynced(failed)
      throw error
    }
  }

  loadTags(tags: readonly string[]): Promise<void> {
    return this.tags.load(tags, (missing) => this.fetchTags(missing))
  }

  /** Re-reads the marks and writes back those the server lacks; never throws (failures are reported). */
  async refresh(): Promise<void> {
    if (this.#stopped) return
    try {
      const remote = await this.readMarks()
      this.local.apply(true, remote.hardAt)
      this.local.apply(false, remote.softAt)
      const local = this.local.current()
      if (local.hardAt > remote.hardAt || local.softAt > remote.softAt) await this.writeBackMarks(local, remote)
    } catch (error) {
      this.host.reportBackground('invalidationRefresh', error)
    }
    await this.#refreshTags()
  }

  /** Writes back tag marks the server lacks, then re-reads the tags read since the last poll. Never throws. */
  async #refreshTags(): Promise<void> {
    const unsynced = this.tags.takeUnsynced()
    if (unsynced.length > 0) {
      const { failed, error } = await this.writeTagMarks(unsynced)
      if (failed.length > 0) {
        this.tags.markUnsynced(failed)
        this.host.reportBackground('tagRefresh', error)
      }
    }
    try {
      for (const chunk of chunks(this.tags.takeUsed())) await this.fetchTags(chunk)
    } catch (error) {
      this.host.reportBackground('tagRefresh', error)
    }
  }

  /** Notifications may have been missed (a dropped or new subscription): every mirrored tag is read again. */
  distrustTags(): void {
    this.tags.distrust()
  }

  /** Whether `stop()` was called: fetches after it do nothing. */
  protected get stopped(): boolean {
    return this.#stopped
  }

  /** Starts re-reading the marks every poll interval (jittered). Called by the subclass once it is set up. */
  protected startPolling(): void {
    this.#poller = new Poller(this.host.invalidationPollIntervalMs, () => this.refresh())
  }

  /** Stops the poller (the backend's connections go away with the backend). */
  stop(): void {
    this.#stopped = true
    this.#poller?.stop()
  }

  abstract close(): Promise<void>
}

/**
 * A backend's live invalidators. Reads wait for the marks of every invalidator created so far to be loaded (once),
 * so that nothing invalidated before this process started is served as fresh.
 */
export class InvalidatorSet<T extends MirroredInvalidator> implements Iterable<T> {
  readonly #live = new Set<T>()
  readonly #loading = new Set<Promise<void>>()

  add(invalidator: T): T {
    this.#live.add(invalidator)
    const loading = invalidator.loaded.finally(() => this.#loading.delete(loading))
    this.#loading.add(loading)
    return invalidator
  }

  /** Whether some invalidator's marks are still being loaded (the hit path checks this before awaiting). */
  get loading(): boolean {
    return this.#loading.size > 0
  }

  /** Resolves once every invalidator created so far has loaded its marks. */
  async loaded(): Promise<void> {
    await Promise.all(this.#loading)
  }

  forget(invalidator: T): void {
    this.#live.delete(invalidator)
  }

  /** Stops every invalidator and forgets them (the backend is closing). */
  stopAll(): void {
    for (const invalidator of [...this.#live]) invalidator.stop()
    this.#live.clear()
  }

  [Symbol.iterator](): Iterator<T> {
    return this.#live[Symbol.iterator]()
  }
}
