import type { MemcachedBackend } from './backend.js'
import { parseLock } from './lock-value.js'
import { deleteCommand, getCommand, itemOf } from './protocol.js'

/** The most abandoned attempts remembered at once (an outage can abandon one per key tried). */
const MAX_ENTRIES = 10_000
const FIRST_SWEEP_MS = 50
const MAX_SWEEP_INTERVAL_MS = 1000

/**
 * Locks this process may hold without knowing it. An attempt to take a lock (ADD, or the CAS write of a takeover)
 * that got no answer may still run on the server later: a frozen server executes what it had received when it
 * thaws, after the caller gave up. The lock would then be held, for up to a lock timeout, by a token nobody will
 * release, and every waiter would wait for it.
 *
 * So such attempts are remembered here until the lock they would have written expires anyway. This process's
 * mutexes take such a lock over at once (`isAbandoned`), and a sweep deletes them (compare-and-delete, only while
 * they hold the abandoned token) so other processes need not wait either: first 50 ms after the failure, then at
 * growing intervals up to a second, one pipelined round trip for all the keys, while any is remembered.
 */
export class AbandonedLocks {
  /** lock key → abandoned token → when its lock expires (wall clock) */
  readonly #entries = new Map<string, Map<string, number>>()
  #size = 0
  #timer: NodeJS.Timeout | undefined
  #interval = FIRST_SWEEP_MS
  #stopped = false

  constructor(private readonly backend: MemcachedBackend) {}

  add(lockKey: string, token: string, expiresAt: number): void {
    if (this.#stopped) return
    if (this.#size >= MAX_ENTRIES) this.#dropExpired(Number.POSITIVE_INFINITY)
    let tokens = this.#entries.get(lockKey)
    if (!tokens) this.#entries.set(lockKey, (tokens = new Map()))
    if (!tokens.has(token)) this.#size++
    tokens.set(token, expiresAt)
    this.#interval = FIRST_SWEEP_MS
    this.#schedule()
  }

  isAbandoned(lockKey: string, token: string): boolean {
    return this.#entries.get(lockKey)?.has(token) ?? false
  }

  #forget(lockKey: string, token: string): void {
    const tokens = this.#entries.get(lockKey)
    if (!tokens?.delete(token)) return
    this.#size--
    if (tokens.size === 0) this.#entries.delete(lockKey)
  }

  stop(): void {
    this.#stopped = true
    clearTimeout(this.#timer)
    this.#entries.clear()
    this.#size = 0
  }

  #schedule(): void {
    if (this.#timer !== undefined || this.#stopped) return
    this.#timer = setTimeout(() => void this.#sweep(), this.#interval)
    this.#timer.unref()
  }

  /** Entries whose lock has expired (all of them, with `now = Infinity`) are forgotten. */
  #dropExpired(now: number): void {
    for (const [lockKey, tokens] of this.#entries) {
      for (const [token, expiresAt] of tokens) if (expiresAt <= now) this.#forget(lockKey, token)
    }
  }

  async #sweep(): Promise<void> {
    try {
      this.#dropExpired(Date.now())
      const keys = [...this.#entries.keys()]
      if (keys.length === 0) return
      const answers = await this.backend.send(keys.map((key) => getCommand(key)))
      const deletes = keys.flatMap((key, i) => {
        const item = itemOf(answers[i]!)
        const token = item === null ? undefined : parseLock(item.value)?.token
        return item !== null && token !== undefined && this.isAbandoned(key, token)
          ? [deleteCommand(key, item.cas)]
          : []
      })
      // Entries stay until their lock would have expired: the same attempt may have been sent twice (a retry on a
      // new connection), and the other copy may still arrive.
      if (deletes.length > 0) await this.backend.send(deletes)
    } catch {
      // The server is still away: try again later.
    } finally {
      this.#timer = undefined
      this.#interval = Math.min(MAX_SWEEP_INTERVAL_MS, this.#interval * 2)
      if (this.#size > 0) this.#schedule()
    }
  }
}
