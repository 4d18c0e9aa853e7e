import { randomBytes } from 'node:crypto'
import type { L1Bus } from '../api.js'
import { chunks } from '../shared/tag-marks.js'

/** What the channel tells its tier. */
export interface ChannelListener {
  /** Another process changed these keys (stored, regenerated or deleted them). */
  changed(keys: readonly string[]): void
  /** Another process says anything may have changed (it could not say which keys). */
  changedAll(): void
  /** `false`: messages may be lost from now on; `true`: they are received again (after `false`, or at the start). */
  connection(connected: boolean): void
}

/** Keys per message: a burst of writes becomes a few messages of moderate size rather than one huge one. */
const KEYS_PER_MESSAGE = 500
/** Keys kept for a retry when publishing fails; beyond it, one "everything changed" message replaces them. */
const MAX_UNSENT = 10_000
const RETRY_MS = 1000
const MESSAGE_VERSION = 1

interface Batch {
  readonly keys: Set<string>
  readonly done: Promise<void>
  resolve(): void
  flushed: boolean
}

/**
 * The L1 coherence protocol on one topic of a bus (one per region): what a process changed, as messages
 * `{"v":1,"from":<sender>,"keys":[...]}` (or `"all":true`), each process ignoring its own.
 *
 * Messages name keys only, never values: a copy is removed and the next read fetches the value. Carrying the value
 * would be sound only if a write and its message were one atomic step on the server (then messages arrive in the
 * order the writes happened); a write and a separate PUBLISH are not, and a late message would put back an older
 * value.
 *
 * Writes made in the same turn of the event loop are announced together; a message that cannot be published is
 * reported and retried (too many of them become one "everything changed" message). A message this version cannot
 * read is taken as "everything changed": safe, whatever a newer version meant.
 */
export class CoherenceChannel {
  /** this process's (this tier's) sender id: its own messages come back and are ignored */
  readonly id = randomBytes(9).toString('base64url')
  #batch: Batch | undefined
  readonly #unsent = new Set<string>()
  #unsentOverflow = false
  #retry: NodeJS.Timeout | undefined
  #closed = false

  constructor(
    private readonly bus: L1Bus,
    readonly topic: string,
    private readonly listener: ChannelListener,
    private readonly reportError: (operation: string, error: unknown) => void,
  ) {}

  /** Starts listening; the listener hears `connection(true)` once messages are received. */
  async start(): Promise<void> {
    if (this.#closed) return
    try {
      await this.bus.listen(
        this.topic,
        (message) => this.#receive(message),
        (connected) => {
          if (!this.#closed) this.listener.connection(connected)
        },
      )
      if (!this.#closed) this.listener.connection(true)
    } catch (error) {
      // The bus subscribes again when its connection comes back, and says so; until then nothing is trusted.
      this.reportError('l1Subscribe', error)
      if (!this.#closed) setTimeout(() => void this.start(), RETRY_MS).unref()
    }
  }

  /**
   * Tells the other processes that `keys` changed. Resolves once the message is published (or failed: failures are
   * reported and retried, never thrown, because the change itself is done).
   */
  announce(keys: readonly string[]): Promise<void> {
    if (this.#closed || keys.length === 0) return Promise.resolve()
    let batch = this.#batch
    if (batch === undefined) {
      let resolve!: () => void
      const done = new Promise<void>((r) => (resolve = r))
      batch = this.#batch = { keys: new Set(), done, resolve, flushed: false }
      const scheduled = batch
      setImmediate(() => void this.#flush(scheduled))
    }
    for (const key of keys) batch.keys.add(key)
    return batch.done
  }

  async #flush(batch: Batch): Promise<void> {
    if (batch.flushed) return batch.done
    batch.flushed = true
    if (this.#batch === batch) this.#batch = undefined
    try {
      const all = this.#unsentOverflow
      const keys = all ? [] : [...this.#unsent, ...batch.keys]
      this.#unsent.clear()
      this.#unsentOverflow = false
      const parts = all ? [] : chunks(keys, KEYS_PER_MESSAGE)
      const messages = all ? [this.#encode(undefined)] : parts.map((part) => this.#encode(part))
      const results = await Promise.allSettled(messages.map((message) => this.bus.publish(this.topic, message)))
      const failed = results.findIndex((result) => result.status === 'rejected')
      if (failed < 0) return
      this.reportError('l1Publish', (results[failed] as PromiseRejectedResult).reason)
      if (all) this.#unsentOverflow = true
      else results.forEach((result, i) => result.status === 'rejected' && this.#keepUnsent(parts[i]!))
      this.#scheduleRetry()
    } finally {
      batch.resolve()
    }
  }

  #keepUnsent(keys: readonly string[]): void {
    for (const key of keys) this.#unsent.add(key)
    if (this.#unsent.size > MAX_UNSENT) {
      this.#unsent.clear()
      this.#unsentOverflow = true
    }
  }

  #scheduleRetry(): void {
    if (this.#retry !== undefined || this.#closed) return
    this.#retry = setTimeout(() => {
      this.#retry = undefined
      if (this.#closed || (this.#unsent.size === 0 && !this.#unsentOverflow)) return
      let resolve!: () => void
      const done = new Promise<void>((r) => (resolve = r))
      void this.#flush({ keys: new Set(), done, resolve, flushed: false })
    }, RETRY_MS)
    this.#retry.unref()
  }

  #encode(keys: readonly string[] | undefined): string {
    return JSON.stringify(
      keys === undefined
        ? { v: MESSAGE_VERSION, from: this.id, all: true }
        : { v: MESSAGE_VERSION, from: this.id, keys },
    )
  }

  #receive(message: string): void {
    if (this.#closed) return
    let parsed: { v?: unknown; from?: unknown; keys?: unknown; all?: unknown }
    try {
      parsed = JSON.parse(message) as typeof parsed
    } catch {
      this.listener.changedAll()
      return
    }
    if (parsed === null || typeof parsed !== 'object') return this.listener.changedAll()
    if (parsed.from === this.id) return
    const { keys } = parsed
    if (
      parsed.v !== MESSAGE_VERSION ||
      parsed.all === true ||
      !Array.isArray(keys) ||
      !keys.every((key) => typeof key === 'string')
    ) {
      this.listener.changedAll()
      return
    }
    this.listener.changed(keys as string[])
  }

  /** Publishes what is pending, then stops listening. */
  async close(): Promise<void> {
    if (this.#closed) return
    const pending = this.#batch
    if (pending) await this.#flush(pending)
    this.#closed = true
    clearTimeout(this.#retry)
    try {
      await this.bus.unlisten(this.topic)
    } catch (error) {
      this.reportError('l1Unsubscribe', error)
    }
  }
}
