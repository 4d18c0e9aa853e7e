import type { InvalidationState } from '../api.js'
import { MirroredInvalidator, type TagWriteResult } from '../shared/mirrored-invalidator.js'
import type { FileBackend } from './backend.js'

/**
 * Region and tag invalidation marks shared by the processes of the machine: kept in the store's `marks` table
 * (max-merged in a write transaction), mirrored in each process for the hit path, as the Redis invalidator does.
 *
 * A process that changes marks toggles the region's signal file (one for region marks, one for tags): the other
 * processes hear it at once (`fs.watch`) and re-read the region's marks, or stop trusting their mirrored tag marks
 * so that each tag is read again (one memory-mapped read per tag) before it is used. Every
 * `invalidationPollInterval` they also re-read the marks, in case a signal was lost.
 *
 * Reading a mark is a lookup in the mapped file, so the marks are loaded synchronously when the invalidator is
 * created: nothing invalidated before the process started is ever served.
 */
export class FileInvalidator extends MirroredInvalidator {
  readonly loaded: Promise<void>
  readonly #regionSignal: string
  readonly #tagSignal: string
  readonly #unlisten: Array<() => void>

  constructor(
    private readonly backend: FileBackend,
    private readonly regionName: string,
  ) {
    super(backend, 2 * backend.invalidationPollIntervalMs)
    this.#regionSignal = backend.marksSignal('r', regionName)
    this.#tagSignal = backend.marksSignal('t', regionName)
    const signals = backend.signals
    this.#unlisten = [
      signals.listen(this.#regionSignal, () => this.#applyStored()),
      signals.listen(this.#tagSignal, () => this.distrustTags()),
    ]
    this.#applyStored()
    this.loaded = Promise.resolve()
    this.startPolling()
  }

  /** Applies the region marks in the store; never throws (the poller tries again). */
  #applyStored(): void {
    if (this.stopped) return
    try {
      const marks = this.backend.store.readRegionMarks(this.regionName)
      this.local.apply(true, marks.hardAt)
      this.local.apply(false, marks.softAt)
    } catch (error) {
      this.backend.reportBackground('invalidationRefresh', error)
    }
  }

  protected async writeMark(hard: boolean, at: number): Promise<void> {
    this.#merge(hard ? { hardAt: at, softAt: 0 } : { hardAt: 0, softAt: at })
  }

  /** Max-merges marks into the store in one write transaction, applies the result and wakes the other processes. */
  #merge(marks: InvalidationState): void {
    const merged = this.backend.store.mergeRegionMarks(this.regionName, marks)
    this.local.apply(true, merged.hardAt)
    this.local.apply(false, merged.softAt)
    this.backend.signals.toggle(this.#regionSignal)
  }

  protected async readMarks(): Promise<InvalidationState> {
    return this.backend.store.readRegionMarks(this.regionName)
  }

  protected async writeBackMarks(local: InvalidationState): Promise<void> {
    this.#merge(local)
  }

  protected async fetchTags(tags: readonly string[]): Promise<void> {
    if (this.stopped || tags.length === 0) return
    const marks = this.backend.store.readTagMarks(this.regionName, tags)
    tags.forEach((tag, i) => this.tags.record(tag, marks[i]!))
  }

  protected async writeTagMarks(entries: ReadonlyArray<readonly [string, InvalidationState]>): Promise<TagWriteResult> {
    try {
      const merged = this.backend.store.mergeTagMarks(this.regionName, entries, this.backend.tagMarkTtlMs)
      entries.forEach(([tag], i) => this.tags.record(tag, merged[i]!))
      this.backend.signals.toggle(this.#tagSignal)
      return { failed: [] }
    } catch (error) {
      return { failed: entries.map(([tag]) => tag), error }
    }
  }

  /** Stops polling and listening (the backend is closing, or the region). */
  override stop(): void {
    super.stop()
    for (const unlisten of this.#unlisten) unlisten()
  }

  async close(): Promise<void> {
    this.stop()
    this.backend.forgetInvalidator(this)
  }
}
