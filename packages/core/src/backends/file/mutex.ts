import { randomBytes } from 'node:crypto'
import { NO_VALUE } from '../../cached-value.js'
import type { AcquireOptions, CacheMutex, FencedStore, LockAcquisition } from '../api.js'
import { jittered, waitForLock, type LockAttempt, type LockWaiter } from '../shared/distributed.js'
import type { FileBackend } from './backend.js'
import type { LockTry } from './store.js'

/**
 * The lock of one key across the processes of the machine: a record `{ token, expires at, traceparent }` in the
 * store's `locks` table, taken in a write transaction when it is absent or expired (which also reads the value,
 * returned as `current`), and removed by the holder in the transaction that stores its value, fenced.
 *
 * A waiter registers for the lock's signal file and creates it; the holder's release removes it, which wakes the
 * waiter at once (`Signals`). The waiter then finds the lock free and the new value there: it returns that value
 * as `produced` without taking the lock. A holder that died wakes nobody: its waiters wake when its lock expires,
 * and one takes it over. They also poll every `lockPollInterval` (jittered), in case a wake-up was lost.
 */
export class FileMutex implements CacheMutex {
  #token: string | undefined

  constructor(
    private readonly backend: FileBackend,
    /** the value's key, which also names its lock */
    private readonly key: string,
  ) {}

  async acquire({ wait, holder }: AcquireOptions): Promise<LockAcquisition> {
    const token = randomBytes(12).toString('hex')
    const traceparent = holder?.traceparent
    let found = this.backend.lockAttempt(this.key, token, traceparent, undefined)
    let lastHolder = 'traceparent' in found ? found.traceparent : undefined
    if (wait && 'remainingMs' in found) {
      // Values created from now on were made by a holder we waited for (or by a set() meanwhile): either will do.
      const since = Date.now()
      const attempt = async (): Promise<LockAttempt> => {
        found = this.backend.lockAttempt(this.key, token, traceparent, since)
        // Taken, or released with a value: the wait is over either way.
        if (!('remainingMs' in found)) return { acquired: true }
        lastHolder = found.traceparent ?? lastHolder
        return { acquired: false, remainingMs: Math.max(0, found.remainingMs), holder: found.holder }
      }
      await waitForLock(attempt, this.#waiter(), {
        lockTimeoutMs: this.backend.lockTimeoutMs,
        nextDelayMs: () => jittered(this.backend.lockPollIntervalMs),
      })
    }
    return this.#answer(found, token, lastHolder)
  }

  /** What the last attempt found, as the region takes it. */
  #answer(found: LockTry, token: string, lastHolder: string | undefined): LockAcquisition {
    const holder = lastHolder ? { holder: { traceparent: lastHolder } } : {}
    if (found.acquired) {
      this.#token = token
      return { acquired: true, current: this.backend.decode(found.current) }
    }
    if ('produced' in found) {
      const produced = this.backend.decode(found.produced)
      // A value that does not decode (a serializer that changed meanwhile) is no answer: the wait failed.
      if (produced !== NO_VALUE) return { acquired: false, produced, ...holder }
    }
    // Held by someone else: one attempt failed, or the wait gave up.
    return { acquired: false, ...holder }
  }

  /** Waits for the lock's signal: registered, then announced, before the next attempt (see `Signals`). */
  #waiter(): LockWaiter {
    const signals = this.backend.signals
    const name = this.backend.lockSignal(this.key)
    let wake: (() => void) | undefined
    let woken = false
    const unlisten = signals.listen(name, () => {
      if (wake) wake()
      else woken = true
    })
    signals.arm(name)
    return {
      wait: (ms) => {
        if (woken) {
          woken = false
          return Promise.resolve()
        }
        return new Promise<void>((resolve) => {
          const done = () => {
            clearTimeout(timer)
            wake = undefined
            resolve()
          }
          const timer = setTimeout(done, Math.max(0, ms))
          wake = done
        })
      },
      dispose: () => {
        unlisten()
        wake?.()
      },
    }
  }

  /**
   * Stores `store.value` fenced and releases, in one transaction: the value is written only while the lock is
   * ours and no newer value is there. Then wakes the waiters of the other processes.
   */
  async release(store?: FencedStore): Promise<boolean> {
    const token = this.#token
    if (token === undefined) return false
    // If this throws, the lock stays ours: a release without a value tries again (or it expires).
    const { released, stored } = this.backend.lockRelease(this.key, token, store)
    this.#token = undefined
    if (released) this.backend.signals.fire(this.backend.lockSignal(this.key))
    return stored
  }

  async locked(): Promise<boolean> {
    return this.backend.lockHeld(this.key)
  }
}
