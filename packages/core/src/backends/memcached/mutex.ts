import { randomBytes } from 'node:crypto'
import type { AcquireOptions, CacheMutex, FencedStore, LockAcquisition } from '../api.js'
import { jittered, sleep, waitForLock, type LockAttempt } from '../shared/distributed.js'
import type { MemcachedBackend } from './backend.js'
import { OP_ADD, OP_SET } from './protocol.js'

/** How long past its deadline a waiter still waits for a lock that is about to run out. */
const LOCK_GRACE_MS = 100

/** A lock's value: `<token>:<expiresAtMs>`. */
function parseLock(value: Buffer): { token: string; expiresAt: number } {
  const text = value.toString('latin1')
  const at = text.lastIndexOf(':')
  return at < 0
    ? { token: text, expiresAt: Number.NaN }
    : { token: text.slice(0, at), expiresAt: Number(text.slice(at + 1)) }
}

/**
 * The memcached lock. memcached's own expiry has a granularity of one second, so the holder also writes when its
 * lock runs out (`expiresAtMs`, wall clock): a waiter that finds an expired lock takes it over with a CAS write,
 * so a dead holder blocks others for `lockTimeout`, not up to a second more. (This compares clocks across hosts:
 * keep them in sync, as for any distributed lock with expiry.) Release is a CAS delete of the version that holds
 * our token, so it never frees a lock someone else took over.
 */
export class MemcachedMutex implements CacheMutex {
  #token: string | undefined

  constructor(
    private readonly backend: MemcachedBackend,
    /** the value's key (the backend adds its prefix) */
    private readonly key: string,
    private readonly lockKey: string,
  ) {}

  async acquire({ wait }: AcquireOptions): Promise<LockAcquisition> {
    return { acquired: await this.#acquire(wait) }
  }

  async #acquire(wait: boolean): Promise<boolean> {
    const token = randomBytes(12).toString('hex')
    const attempt = () => this.#attempt(token)
    const acquired = wait
      ? await waitForLock(
          attempt,
          { wait: sleep, dispose: () => {} },
          {
            lockTimeoutMs: this.backend.lockTimeoutMs,
            // jittered exponential backoff: 10ms, 20ms, 40ms ... up to lockPollInterval
            nextDelayMs: (round) => jittered(Math.min(this.backend.lockPollIntervalMs, 10 * 2 ** Math.min(round, 16))),
            graceMs: LOCK_GRACE_MS,
          },
        )
      : (await attempt()).acquired
    if (acquired) this.#token = token
    return acquired
  }

  async #attempt(token: string): Promise<LockAttempt> {
    const backend = this.backend
    const value = () => Buffer.from(`${token}:${Date.now() + backend.lockTimeoutMs}`, 'latin1')
    if (await backend.store(OP_ADD, this.lockKey, value(), backend.lockExpirySeconds)) return { acquired: true }
    const current = await backend.getItem(this.lockKey)
    // Released between the two calls: try again at once.
    if (current === null) return { acquired: false, remainingMs: 0 }
    const holder = parseLock(current.value)
    // memjs retried our ADD after a lost answer: the lock is ours.
    if (holder.token === token) return { acquired: true }
    if (!Number.isFinite(holder.expiresAt)) return { acquired: false, remainingMs: undefined }
    const remaining = holder.expiresAt - Date.now()
    if (remaining > 0) return { acquired: false, remainingMs: remaining, holder: holder.token }
    // The holder's time is up (it died, or is too slow): take the lock over, unless someone else just did.
    if (await backend.store(OP_SET, this.lockKey, value(), backend.lockExpirySeconds, current.cas))
      return { acquired: true }
    return { acquired: false, remainingMs: 0 }
  }

  /**
   * Stores `store.value` (while the lock is ours), then releases. Not yet one atomic step: the value is written,
   * then the lock is deleted if it still holds our token.
   */
  async release(store?: FencedStore): Promise<boolean> {
    const token = this.#token
    if (token === undefined) return false
    let stored = false
    if (store !== undefined) {
      await this.backend.set(this.key, store.value)
      stored = true
    }
    this.#token = undefined
    try {
      const current = await this.backend.getItem(this.lockKey)
      if (current !== null && parseLock(current.value).token === token)
        await this.backend.remove(this.lockKey, current.cas)
    } catch (error) {
      // The lock runs out by itself after lockTimeout.
      this.backend.reportBackground('unlock', error)
    }
    return stored
  }

  async locked(): Promise<boolean> {
    const current = await this.backend.getItem(this.lockKey)
    if (current === null) return false
    const { expiresAt } = parseLock(current.value)
    return !Number.isFinite(expiresAt) || expiresAt > Date.now()
  }
}
