import { randomBytes } from 'node:crypto'
import type { AcquireOptions, CacheMutex, FencedStore, LockAcquisition } from '../api.js'
import { jittered, waitForLock } from '../shared/distributed.js'
import type { RedisBackend } from './backend.js'

/** How long past its deadline a waiter still waits for a lock that is about to run out. */
const LOCK_GRACE_MS = 100

/**
 * The Redis lock of one key: `SET <lockKey> <random token> NX PX <lockTimeout>` (the `ACQUIRE` script), released by
 * a compare-and-delete that publishes on the backend's unlock channel (`RELEASE`). A waiter is woken by that
 * message and polls every `lockPollInterval` (jittered) in case it misses one.
 */
export class RedisMutex implements CacheMutex {
  #token: string | undefined

  constructor(
    private readonly backend: RedisBackend,
    /** the value's key (the backend adds its prefix) */
    private readonly key: string,
    private readonly lockKey: string,
  ) {}

  async acquire({ wait }: AcquireOptions): Promise<LockAcquisition> {
    return { acquired: await this.#acquire(wait) }
  }

  async #acquire(wait: boolean): Promise<boolean> {
    const token = randomBytes(16).toString('hex')
    const first = await this.backend.lockAttempt(this.lockKey, token)
    if (first.acquired || !wait) {
      if (first.acquired) this.#token = token
      return first.acquired
    }
    const waiter = await this.backend.lockWaiter(this.lockKey)
    const acquired = await waitForLock(() => this.backend.lockAttempt(this.lockKey, token), waiter, {
      lockTimeoutMs: this.backend.lockTimeoutMs,
      nextDelayMs: () => jittered(this.backend.lockPollIntervalMs),
      graceMs: LOCK_GRACE_MS,
    })
    if (acquired) this.#token = token
    return acquired
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
      await this.backend.lockRelease(this.lockKey, token)
    } catch (error) {
      // The lock expires by itself after lockTimeout.
      this.backend.reportBackground('unlock', error)
    }
    return stored
  }

  locked(): Promise<boolean> {
    return this.backend.lockHeld(this.lockKey)
  }
}
