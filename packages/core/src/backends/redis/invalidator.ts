import type { InvalidationState } from '../api.js'
import { MirroredInvalidator, type TagWriteResult } from '../shared/mirrored-invalidator.js'
import { parseTagMarks } from '../shared/tag-marks.js'
import type { RedisBackend } from './backend.js'
import { INVALIDATE, MERGE_TAGS } from './scripts.js'

/** How long the first reads of a region wait for its invalidation channel's subscription. */
const SUBSCRIBE_WAIT_MS = 250

/**
 * Region invalidation marks shared through Redis: a hash `<prefix>corral:invalidation:<region>` with fields
 * `hard` and `soft` (epoch milliseconds, max-merged by a script) and a channel of the same name on which every
 * change is published. Each process keeps a local copy (`current()` is synchronous), updated by the channel at
 * once, and by re-reading the hash at least every `invalidationPollInterval` (jittered) in case a message was
 * missed (the subscriber was reconnecting). A process that holds marks newer than the hash (its write failed
 * during an outage, or the hash was evicted) writes them back.
 *
 * Tag marks: one key per tag, `<prefix>corral:tag:{<region>}:<tag>`, holding `"<hardAt>,<softAt>"`, max-merged by
 * a script that publishes the merged marks on the region's channel (a JSON array, told apart from the region's
 * `"<hard> <soft>"` messages by its `[`). The `{<region>}` hash tag puts every tag of a region in one slot of a
 * cluster, so a batch of tags is one MGET (or one script) there too. A mark expires `tagMarkTtlMs` after its latest
 * time: by then every value it could invalidate has expired on the server; without a server TTL on values, marks
 * do not expire either (they are as many as the distinct tags invalidated).
 *
 * Each process mirrors the tags it reads in a bounded LRU (`TagMirror`): the hit path asks it synchronously. A
 * mirrored mark is trusted for 2 × `invalidationPollInterval` and until the subscriber drops or (re)subscribes;
 * notifications update it at once, and the marks of tags read since the last poll are re-read (batched) at every
 * poll, so tags in use stay trusted and a hit costs the one GET. An unknown or untrusted tag costs one MGET,
 * batched over all the tags a read needs and shared by concurrent reads.
 */
export class RedisInvalidator extends MirroredInvalidator {
  readonly loaded: Promise<void>
  readonly #key: string
  readonly #tagPrefix: string

  constructor(
    private readonly backend: RedisBackend,
    regionName: string,
  ) {
    super(backend, 2 * backend.invalidationPollIntervalMs)
    this.#key = `${backend.keyPrefix}corral:invalidation:${regionName}`
    this.#tagPrefix = `${backend.keyPrefix}corral:tag:{${regionName}}:`
    const subscribed = this.backend
      .subscribe(this.#key, (message) => {
        if (message.startsWith('[')) this.#applyTagMessage(message)
        else this.#applyRemote(message.split(' '))
      })
      // Tags mirrored before the subscription was in place could have missed a notification.
      .then(() => this.distrustTags())
      .catch((error: unknown) => {
        // polling keeps the marks current until the subscriber reconnects
        this.backend.reportBackground('subscribe', error)
      })
    // The first reads wait for the marks and for the subscription (briefly: if it is slow, polling covers it).
    this.loaded = Promise.all([
      this.refresh(),
      Promise.race([subscribed, new Promise((resolve) => setTimeout(resolve, SUBSCRIBE_WAIT_MS).unref())]),
    ]).then(() => {})
    this.startPolling()
  }

  protected async writeMark(hard: boolean, at: number): Promise<void> {
    const merged = await this.backend.evalScript(
      INVALIDATE,
      [this.#key],
      [hard ? 'hard' : 'soft', String(at), this.#key],
    )
    this.#applyRemote(merged)
  }

  protected async readMarks(): Promise<InvalidationState> {
    const fields = await this.backend.run(() => this.backend.client.hgetall(this.#key))
    return { hardAt: Number(fields.hard ?? 0) || 0, softAt: Number(fields.soft ?? 0) || 0 }
  }

  protected async writeBackMarks(local: InvalidationState, remote: InvalidationState): Promise<void> {
    if (local.hardAt > remote.hardAt)
      await this.backend.evalScript(INVALIDATE, [this.#key], ['hard', String(local.hardAt), ''])
    if (local.softAt > remote.softAt)
      await this.backend.evalScript(INVALIDATE, [this.#key], ['soft', String(local.softAt), ''])
  }

  /** One MGET (per slot, sent together, on a cluster) for `tags`; absent tags are recorded as not invalidated. */
  protected async fetchTags(tags: readonly string[]): Promise<void> {
    if (this.stopped || tags.length === 0) return
    const keys = tags.map((tag) => this.#tagPrefix + tag)
    const client = this.backend.client
    await this.backend.run(() =>
      Promise.all(
        this.backend.slotGroups(keys).map(async (indexes) => {
          const values = await client.mget(...indexes.map((i) => keys[i]!))
          indexes.forEach((i, j) => this.tags.record(tags[i]!, parseTagMarks(values[j])))
        }),
      ),
    )
  }

  /** One script per slot: all the tags fail together (a region's tags share one slot). */
  protected async writeTagMarks(entries: ReadonlyArray<readonly [string, InvalidationState]>): Promise<TagWriteResult> {
    try {
      await this.#mergeTags(entries)
      return { failed: [] }
    } catch (error) {
      return { failed: entries.map(([tag]) => tag), error }
    }
  }

  /** Max-merges marks into Redis (one script per slot) and records the merged marks. */
  async #mergeTags(entries: ReadonlyArray<readonly [string, InvalidationState]>): Promise<void> {
    if (entries.length === 0) return
    const keys = entries.map(([tag]) => this.#tagPrefix + tag)
    const ttl = this.backend.tagMarkTtlMs
    await Promise.all(
      this.backend.slotGroups(keys).map(async (indexes) => {
        const args = [ttl === undefined ? '-1' : String(ttl), String(Date.now()), this.#key]
        for (const i of indexes) {
          const [tag, marks] = entries[i]!
          args.push(tag, String(marks.hardAt), String(marks.softAt))
        }
        const merged = await this.backend.evalScript(
          MERGE_TAGS,
          indexes.map((i) => keys[i]!),
          args,
        )
        if (!Array.isArray(merged)) return
        indexes.forEach((i, j) => this.tags.record(entries[i]![0], parseTagMarks(String(merged[j] ?? ''))))
      }),
    )
  }

  #applyTagMessage(message: string): void {
    let parsed: unknown
    try {
      parsed = JSON.parse(message)
    } catch {
      return
    }
    if (!Array.isArray(parsed)) return
    for (let i = 0; i + 1 < parsed.length; i += 2) {
      const tag = parsed[i]
      const marks = parsed[i + 1]
      if (typeof tag === 'string' && typeof marks === 'string') this.tags.recordIfKnown(tag, parseTagMarks(marks))
    }
  }

  #applyRemote(marks: unknown): void {
    if (!Array.isArray(marks)) return
    const hard = Number(marks[0])
    const soft = Number(marks[1])
    if (Number.isFinite(hard)) this.local.apply(true, hard)
    if (Number.isFinite(soft)) this.local.apply(false, soft)
  }

  async close(): Promise<void> {
    this.stop()
    this.backend.forgetInvalidator(this)
    await this.backend.unsubscribe(this.#key)
  }
}
