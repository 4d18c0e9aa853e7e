import { randomBytes } from 'node:crypto'
import type { AcquireOptions, CacheMutex, FencedStore, LockAcquisition, LockHolder } from '../api.js'
import { jittered, validTraceparent, waitForLock } from '../shared/distributed.js'
import type { RedisBackend, RedisLockAttempt } from './backend.js'

/**
 * The Redis lock of one key, two round trips around a creator:
 *
 * - `acquire` is one script (`ACQUIRE`): `SET <lockKey> "<token> <traceparent>" NX PX <lockTimeout>` and, when
 *   taken, the value under the key (`current`, so the region's re-check needs no read). When the lock is held, a
 *   caller that waits marks it, subscribes to the key's release channel and waits for the release message, which
 *   carries the holder's value: it returns it as `produced`, with no read. It polls every `lockPollInterval`
 *   (jittered) in case it misses a message, and wakes when the holder's lock runs out.
 * - `release(store)` is one script (`RELEASE`): if the lock still holds our token, stores the value unless one
 *   created after `store.since` is there, deletes the lock, and publishes the release to the waiters.
 *
 * The lock's value also carries the holder's trace context, so waiters in other processes can link to its span.
 */
export class RedisMutex implements CacheMutex {
  #token: string | undefined

  constructor(
    private readonly backend: RedisBackend,
    /** the value's key (the backend adds its prefix) */
    private readonly key: string,
    /** the lock's key, prefixed (on a cluster, in the value's hash slot) */
    private readonly lockKey: string,
  ) {}

  async acquire({ wait, holder }: AcquireOptions): Promise<LockAcquisition> {
    const token = randomBytes(16).toString('hex')
    const lockValue = `${token} ${traceparentField(holder)}`
    const attempt = async () => {
      try {
        return await this.backend.lockAttempt(this.lockKey, this.key, lockValue, wait)
      } catch (error) {
        // The attempt may still run after we gave up on it (a frozen server answers later): a compare-and-delete
        // sent after it on the same connection runs after it, so a lock taken that late does not block others.
        this.backend.lockRelease(this.lockKey, this.key, token, undefined).catch(() => {})
        throw error
      }
    }
    const first = await attempt()
    if (first.acquired) return this.#taken(token, first)
    if (!wait) return notAcquired(first)

    const waiter = await this.backend.lockWaiter(this.key)
    let last: RedisLockAttempt = first
    const acquired = await waitForLock(async () => (last = await attempt()), waiter, {
      lockTimeoutMs: this.backend.lockTimeoutMs,
      nextDelayMs: () => jittered(this.backend.lockPollIntervalMs),
    })
    if (acquired && last.acquired) return this.#taken(token, last)
    const released = waiter.released
    if (released !== undefined)
      return { acquired: false, produced: released.value, ...(released.holder ? { holder: released.holder } : {}) }
    return notAcquired(last)
  }

  #taken(token: string, attempt: RedisLockAttempt): LockAcquisition {
    this.#token = token
    return attempt.current === undefined ? { acquired: true } : { acquired: true, current: attempt.current }
  }

  /**
   * With `store`: stores the value fenced and releases, atomically (see the class comment); resolves to whether
   * it stored. A backend error leaves the lock ours, so a later `release()` can still free it. Without: releases.
   */
  async release(store?: FencedStore): Promise<boolean> {
    const token = this.#token
    if (token === undefined) return false
    if (store !== undefined) {
      const stored = await this.backend.lockRelease(this.lockKey, this.key, token, store)
      this.#token = undefined
      return stored
    }
    this.#token = undefined
    try {
      await this.backend.lockRelease(this.lockKey, this.key, token, undefined)
    } catch (error) {
      // The lock expires by itself after lockTimeout.
      this.backend.reportBackground('unlock', error)
    }
    return false
  }

  locked(): Promise<boolean> {
    return this.backend.lockHeld(this.lockKey)
  }
}

/** The holder's traceparent as the lock value and release messages carry it: `-` when there is none. */
export function traceparentField(holder: LockHolder | undefined): string {
  return validTraceparent(holder?.traceparent) ?? '-'
}

/** The holder named by a traceparent field, or `undefined`. */
export function holderOf(field: string | undefined): LockHolder | undefined {
  const traceparent = validTraceparent(field)
  return traceparent === undefined ? undefined : { traceparent }
}

function notAcquired(attempt: RedisLockAttempt): LockAcquisition {
  return attempt.holderInfo ? { acquired: false, holder: attempt.holderInfo } : { acquired: false }
}
