import type { InvalidationState } from '../api.js'
import { NOT_INVALIDATED } from '../../invalidation.js'
import { BackendError } from '../../errors.js'
import { jittered, sleep } from '../shared/distributed.js'
import { MirroredInvalidator, type TagWriteResult } from '../shared/mirrored-invalidator.js'
import { formatTagMarks, parseTagMarks } from '../shared/tag-marks.js'
import type { MemcachedBackend } from './backend.js'
import { OP_ADD, OP_SET, expiryField, getCommand, itemOf } from './protocol.js'

/**
 * Region invalidation marks shared through memcached: `{"hard":ms,"soft":ms}` under one key, max-merged with
 * CAS writes, and re-read at least every `invalidationPollInterval` (jittered; memcached has no pub/sub, so that
 * interval bounds the propagation delay). memcached may evict the key under memory pressure; every process keeps
 * its marks and writes back any that the server lost, at its next poll.
 *
 * Tag marks: one key per tag, `<prefix>corral:tag:<region>:<tag>` (SHA-1 mangled when memcached cannot hold it),
 * holding `"<hardAt>,<softAt>"`, max-merged the same way (ADD when absent, else a CAS write), with an expiry
 * `tagMarkTtlMs` after the mark's latest time (none when values never expire). Each process mirrors the tags it
 * reads (`TagMirror`) and trusts a mirrored mark for `invalidationPollInterval`; at every poll it re-reads, in one
 * batch, the tags read since the previous poll. So another process's tag invalidation is seen within about one
 * `invalidationPollInterval`, a hit on a value whose tags are mirrored costs its one GET, and unknown tags cost
 * one more round trip (their GETs pipelined).
 */
export class MemcachedInvalidator extends MirroredInvalidator {
  readonly loaded: Promise<void>
  readonly #key: string
  readonly #tagPrefix: string

  constructor(
    private readonly backend: MemcachedBackend,
    regionName: string,
  ) {
    super(backend, backend.invalidationPollIntervalMs)
    this.#key = backend.keyFor(`corral:invalidation:${regionName}`)
    this.#tagPrefix = `corral:tag:${regionName}:`
    this.loaded = this.refresh()
    this.startPolling()
  }

  protected async writeMark(): Promise<void> {
    await this.#merge(this.local.current())
  }

  protected async readMarks(): Promise<InvalidationState> {
    const item = await this.backend.getItem(this.#key)
    return item === null ? NOT_INVALIDATED : parseMarks(item.value)
  }

  protected async writeBackMarks(local: InvalidationState): Promise<void> {
    await this.#merge(local)
  }

  #tagKey(tag: string): string {
    return this.backend.keyFor(this.#tagPrefix + tag)
  }

  /** GETs of every tag, written together (one round trip); absent tags are recorded as not invalidated. */
  protected async fetchTags(tags: readonly string[]): Promise<void> {
    if (this.stopped || tags.length === 0) return
    const responses = await this.backend.send(tags.map((tag) => getCommand(this.#tagKey(tag))))
    tags.forEach((tag, i) => {
      const item = itemOf(responses[i]!)
      this.tags.record(tag, item ? parseTagMarks(item.value.toString('latin1')) : NOT_INVALIDATED)
    })
  }

  /** One CAS merge per tag, all at once: each tag succeeds or fails on its own. */
  protected async writeTagMarks(entries: ReadonlyArray<readonly [string, InvalidationState]>): Promise<TagWriteResult> {
    const results = await Promise.allSettled(entries.map(([tag, marks]) => this.#mergeTag(tag, marks)))
    const failed = entries.filter((_, i) => results[i]!.status === 'rejected').map(([tag]) => tag)
    if (failed.length === 0) return { failed }
    return { failed, error: (results.find((result) => result.status === 'rejected') as PromiseRejectedResult).reason }
  }

  /** Max-merges `marks` into the tag's key: ADD when absent, else a CAS write, retried on contention. */
  async #mergeTag(tag: string, marks: InvalidationState): Promise<void> {
    const key = this.#tagKey(tag)
    for (let attempt = 0; attempt < 20; attempt++) {
      const item = await this.backend.getItem(key)
      const remote = item === null ? NOT_INVALIDATED : parseTagMarks(item.value.toString('latin1'))
      const merged = {
        hardAt: Math.max(remote.hardAt, marks.hardAt),
        softAt: Math.max(remote.softAt, marks.softAt),
      }
      if (item !== null && merged.hardAt === remote.hardAt && merged.softAt === remote.softAt) {
        this.tags.record(tag, remote)
        return
      }
      const value = Buffer.from(formatTagMarks(merged), 'latin1')
      const expiry = this.#tagExpiry(merged)
      const stored =
        item === null
          ? await this.backend.store(OP_ADD, key, value, expiry)
          : await this.backend.store(OP_SET, key, value, expiry, item.cas)
      if (stored) {
        this.tags.record(tag, merged)
        return
      }
      await sleep(jittered(10))
    }
    throw new BackendError('memcached backend: could not record the tag invalidation (too much contention)')
  }

  /** The expiry field of a tag mark: `tagMarkTtlMs` after its latest time (0, never, without one). */
  #tagExpiry(marks: InvalidationState): number {
    const ttl = this.backend.tagMarkTtlMs
    if (ttl === undefined) return 0
    return expiryField(Math.max(1, (Math.max(marks.hardAt, marks.softAt) + ttl - Date.now()) / 1000))
  }

  /** Max-merges `marks` into the stored ones: ADD when absent, else a CAS write, retried on contention. */
  async #merge(marks: InvalidationState): Promise<void> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const item = await this.backend.getItem(this.#key)
      if (item === null) {
        if (await this.backend.store(OP_ADD, this.#key, formatMarks(marks), 0)) return
        continue
      }
      const remote = parseMarks(item.value)
      this.local.apply(true, remote.hardAt)
      this.local.apply(false, remote.softAt)
      const merged = this.local.current()
      if (merged.hardAt === remote.hardAt && merged.softAt === remote.softAt) return
      if (await this.backend.store(OP_SET, this.#key, formatMarks(merged), 0, item.cas)) return
      await sleep(jittered(10))
    }
    throw new BackendError('memcached backend: could not record the invalidation (too much contention)')
  }

  async close(): Promise<void> {
    this.stop()
    this.backend.forgetInvalidator(this)
  }
}

function formatMarks(marks: InvalidationState): Buffer {
  return Buffer.from(JSON.stringify({ hard: marks.hardAt, soft: marks.softAt }), 'utf8')
}

function parseMarks(value: Buffer): InvalidationState {
  try {
    const parsed = JSON.parse(value.toString('utf8')) as { hard?: unknown; soft?: unknown }
    const hard = Number(parsed?.hard)
    const soft = Number(parsed?.soft)
    return { hardAt: Number.isFinite(hard) ? hard : 0, softAt: Number.isFinite(soft) ? soft : 0 }
  } catch {
    return { hardAt: 0, softAt: 0 }
  }
}
