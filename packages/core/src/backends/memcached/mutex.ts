import { randomBytes } from 'node:crypto'
import { NO_VALUE, type CachedValue, type NoValue } from '../../cached-value.js'
import type { AcquireOptions, CacheMutex, FencedStore, LockAcquisition, LockHolder } from '../api.js'
import {
  createdAfter,
  jittered,
  sleep,
  validTraceparent,
  waitForLock,
  type LockAttempt,
} from '../shared/distributed.js'
import type { MemcachedBackend } from './backend.js'
import { mayHaveRun } from './transport.js'
import { formatLock, parseLock, type LockValue } from './lock-value.js'
import {
  OP_ADD,
  OP_SET,
  STATUS_EXISTS,
  deleteCommand,
  deletedBy,
  getCommand,
  itemOf,
  storeCommand,
  storedBy,
  type Command,
  type Item,
  type Response,
} from './protocol.js'

/**
 * How far apart the hosts' clocks may be. Others judge a lock expired by its recorded deadline on their own
 * clock, so a holder trusts its lock without looking only while it is younger than its timeout by this margin
 * (plus a command's timeout); a lock recorded further in the future than a lock timeout plus this margin is not
 * believed (see `#judge`).
 */
const CLOCK_SKEW_ALLOWANCE_MS = 1000

/** The token given to a lock value Corral did not write, when it is given an expiry. */
const FOREIGN_TOKEN = 'foreign'

/** The lock as its holder knows it. */
interface Held {
  readonly token: string
  /** the lock item's CAS version as the holder wrote it */
  readonly cas: Buffer
  /** `performance.now()` when the request that took the lock was sent: the lock expires `lockTimeout` after */
  readonly takenAt: number
  /** the value item read with the lock (`null`: there was none), the version a store replaces */
  readonly value: Item | null
}

/** One `acquire`: what its attempts learned. */
interface Search {
  readonly token: string
  readonly traceparent: string | undefined
  readonly wait: boolean
  /** wall clock when the wait began: a value created after it is what a waiter waits for */
  readonly since: number
  /** the next attempt only looks (the lock was held at the last one) instead of trying to add it */
  look: boolean
  /** the holder last seen */
  seen?: LockValue | undefined
  /** acquired: the value read with the lock */
  current?: CachedValue | NoValue
  /** a value created after `since`, found while waiting */
  produced?: CachedValue
}

/** An attempt that ends the wait: the lock was taken, or a value was produced meanwhile. */
const DONE: LockAttempt = { acquired: true }

/**
 * The memcached lock of one key.
 *
 * Taking it: ADD of `<token>[:<traceparent>]:<expiresAtMs>` with a memcached expiry, sent together with a GET of the
 * lock and a GET of the value (one round trip): taken, the GET of the value is `current`; held by someone else,
 * the GET of the lock says by whom and until when. memcached's expiry has a granularity of one second, so the
 * holder also records when its lock runs out (wall clock): a waiter that finds an expired lock takes it over with
 * a CAS write, so a dead holder blocks others for `lockTimeout`, not a second more. (This compares clocks across
 * hosts: keep them in sync, as for any distributed lock with expiry.) A lock value Corral did not write, or one
 * recorded to outlive any lock, is rewritten (CAS) to expire `lockTimeout` from now: it is taken over then.
 *
 * Waiting: polls with jittered exponential backoff (memcached has no notifications), each poll a GET of the lock
 * and of the value in one round trip. A value created after the wait began ends the wait (`produced`); a released
 * lock is taken (ADD); an expired one taken over.
 *
 * Releasing with a value (fenced): the value is written with CAS over the version read with the lock (an ADD if
 * there was none) together with a CAS delete of the lock (one round trip), so it never replaces a value written
 * meanwhile; if one was, the write is repeated only over a value created before `since`. While the lock is young
 * (its timeout minus a command timeout and the clock allowance not yet passed) nobody can have taken it over; an
 * older lock is first read (with the value, one round trip) and nothing is stored if it is no longer ours.
 */
export class MemcachedMutex implements CacheMutex {
  #held: Held | undefined

  constructor(
    private readonly backend: MemcachedBackend,
    /** where the value is stored (the backend's key) */
    private readonly valueKey: string,
    private readonly lockKey: string,
  ) {}

  async acquire({ wait, holder }: AcquireOptions): Promise<LockAcquisition> {
    const search: Search = {
      token: randomBytes(12).toString('hex'),
      traceparent: validTraceparent(holder?.traceparent),
      wait,
      since: Date.now(),
      look: false,
    }
    const done = wait
      ? await waitForLock(
          () => this.#attempt(search),
          { wait: sleep, dispose: () => {} },
          {
            lockTimeoutMs: this.backend.lockTimeoutMs,
            // jittered exponential backoff: 10ms, 20ms, 40ms ... up to lockPollInterval
            nextDelayMs: (round) => jittered(Math.min(this.backend.lockPollIntervalMs, 10 * 2 ** Math.min(round, 16))),
          },
        )
      : (await this.#attempt(search)).acquired
    const seen: LockHolder | undefined = search.seen?.traceparent ? { traceparent: search.seen.traceparent } : undefined
    if (search.produced !== undefined)
      return { acquired: false, produced: search.produced, ...(seen && { holder: seen }) }
    if (done) return { acquired: true, current: search.current ?? NO_VALUE }
    return { acquired: false, ...(seen && { holder: seen }) }
  }

  /** One attempt: ADD (or, while the lock is held, only look), then judge what was found. */
  async #attempt(search: Search): Promise<LockAttempt> {
    const { backend, lockKey, valueKey } = this
    const sentAt = performance.now()
    if (search.look) {
      const [lock, value] = await backend.send([getCommand(lockKey), getCommand(valueKey)])
      return this.#judge(search, itemOf(lock!), itemOf(value!), sentAt)
    }
    const add = storeCommand(OP_ADD, lockKey, this.#lockValue(search), backend.lockExpirySeconds)
    const [added, lock, value] = await this.#sendTaking(search, [add, getCommand(lockKey), getCommand(valueKey)])
    if (storedBy(added!, add)) return this.#took(search, added!.cas, sentAt, itemOf(value!))
    return this.#judge(search, itemOf(lock!), itemOf(value!), sentAt)
  }

  /**
   * Sends commands whose first may take the lock. Without an answer, it may still take it later (see
   * `AbandonedLocks`): the attempt is remembered, so that such a lock is taken over or deleted, not waited for.
   */
  async #sendTaking(search: Search, commands: Command[]): Promise<Response[]> {
    const expiresAt = Date.now() + this.backend.lockTimeoutMs
    try {
      return await this.backend.send(commands)
    } catch (error) {
      if (mayHaveRun(error)) this.backend.abandonedLocks.add(this.lockKey, search.token, expiresAt)
      throw error
    }
  }

  /** What a look at the lock (`lock`) and the value (`value`) means for the search. */
  async #judge(search: Search, lock: Item | null, value: Item | null, sentAt: number): Promise<LockAttempt> {
    const { backend, lockKey, valueKey } = this
    const found = lock === null ? undefined : parseLock(lock.value)
    // Our own ADD, sent again after its answer was lost: the lock is ours.
    if (lock !== null && found?.token === search.token) return this.#took(search, lock.cas, sentAt, value)
    if (search.wait && value !== null && createdAfter(value.value, search.since)) {
      const produced = backend.decode(value.value)
      if (produced !== NO_VALUE) {
        search.produced = produced
        return DONE
      }
    }
    if (lock === null) {
      // Released since the last look: try to take it now; released between our ADD and its GET: at once again.
      if (!search.look) return { acquired: false, remainingMs: 0 }
      search.look = false
      return this.#attempt(search)
    }
    const now = Date.now()
    if (found === undefined || found.expiresAt > now + backend.lockTimeoutMs + CLOCK_SKEW_ALLOWANCE_MS) {
      // Not a lock Corral wrote, or one that claims to outlive any lock: bound it to one lock timeout from now
      // (CAS: if it changed meanwhile, the next look sees what it became).
      search.seen = found
      const bounded = formatLock(found?.token ?? FOREIGN_TOKEN, found?.traceparent, now + backend.lockTimeoutMs)
      await backend.store(OP_SET, lockKey, bounded, backend.lockExpirySeconds, lock.cas)
      search.look = true
      return { acquired: false, remainingMs: backend.lockTimeoutMs, holder: found?.token ?? FOREIGN_TOKEN }
    }
    search.seen = found
    // The holder's time is up (it died, or is too slow), or it is an attempt of this process that got no answer
    // but ran: take the lock over, unless someone else just did.
    if (found.expiresAt <= now || backend.abandonedLocks.isAbandoned(lockKey, found.token)) {
      const takeover = storeCommand(OP_SET, lockKey, this.#lockValue(search), backend.lockExpirySeconds, lock.cas)
      const takenAt = performance.now()
      const [written, current] = await this.#sendTaking(search, [takeover, getCommand(valueKey)])
      if (storedBy(written!, takeover)) return this.#took(search, written!.cas, takenAt, itemOf(current!))
      search.look = false
      return { acquired: false, remainingMs: 0 }
    }
    search.look = true
    return { acquired: false, remainingMs: found.expiresAt - now, holder: found.token }
  }

  #lockValue(search: Search): Buffer {
    return formatLock(search.token, search.traceparent, Date.now() + this.backend.lockTimeoutMs)
  }

  #took(search: Search, cas: Buffer, takenAt: number, value: Item | null): LockAttempt {
    this.#held = { token: search.token, cas, takenAt, value }
    search.current = value === null ? NO_VALUE : this.backend.decode(value.value)
    return DONE
  }

  async release(store?: FencedStore): Promise<boolean> {
    const held = this.#held
    if (held === undefined) return false
    if (store === undefined) {
      this.#held = undefined
      await this.#unlock(held.token, held.cas)
      return false
    }
    // Encoded first: a value that cannot be serialized throws with the lock still held (the region releases it).
    const data = this.backend.encode(store.value)
    const stored = await this.#storeAndUnlock(held, data, store.since)
    this.#held = undefined
    return stored
  }

  /** The fenced store (see the class comment); resolves to whether `data` is stored. */
  async #storeAndUnlock(held: Held, data: Buffer, since: number): Promise<boolean> {
    const { backend, lockKey, valueKey } = this
    let lockCas = held.cas
    let value = held.value
    const age = performance.now() - held.takenAt
    if (age >= backend.lockTimeoutMs - backend.timeoutMs - CLOCK_SKEW_ALLOWANCE_MS) {
      // Old enough to have been taken over: look before writing.
      const [lockResponse, valueResponse] = await backend.send([getCommand(lockKey), getCommand(valueKey)])
      const lock = itemOf(lockResponse!)
      const found = lock === null ? undefined : parseLock(lock.value)
      // Lost (taken over, or gone): store nothing, and leave the lock to whoever has it.
      if (lock === null || found?.token !== held.token) return false
      // Expired: anyone may take it now, so it is no longer ours to store under.
      if (found.expiresAt <= Date.now()) {
        await this.#unlock(held.token, lock.cas)
        return false
      }
      lockCas = lock.cas
      value = itemOf(valueResponse!)
    }
    if (value !== null && createdAfter(value.value, since)) {
      await this.#unlock(held.token, lockCas)
      return false
    }
    const write = backend.fencedStoreCommand(valueKey, data, value)
    const [written, unlocked] = await backend.send([write, deleteCommand(lockKey, lockCas)])
    await this.#unlock(held.token, lockCas, unlocked)
    if (storedBy(written!, write)) return true
    // The value changed since it was read (a set(), another holder): store only over one created before `since`.
    return backend.storeIfNotNewer(valueKey, data, since, await backend.getItem(valueKey))
  }

  /**
   * Deletes the lock if it is still the version `cas` (with `answer`: that delete was sent already). A changed
   * version that still holds our token (another process bounded its expiry) is deleted too; someone else's lock
   * never is. A failure is reported: the lock runs out by itself after lockTimeout.
   */
  async #unlock(token: string, cas: Buffer, answer?: Response): Promise<void> {
    const { backend, lockKey } = this
    try {
      const response = answer ?? (await backend.send([deleteCommand(lockKey, cas)]))[0]!
      if (response.status !== STATUS_EXISTS) {
        deletedBy(response)
        return
      }
      const lock = await backend.getItem(lockKey)
      if (lock !== null && parseLock(lock.value)?.token === token) await backend.remove(lockKey, lock.cas)
    } catch (error) {
      backend.reportBackground('unlock', error)
    }
  }

  async locked(): Promise<boolean> {
    const item = await this.backend.getItem(this.lockKey)
    if (item === null) return false
    const found = parseLock(item.value)
    return found === undefined || found.expiresAt > Date.now()
  }
}
