/**
 * The backend conformance suite: what every `CacheBackend` must do, registered as Vitest tests by
 * `describeBackendConformance(name, options)`. memory, null, redis (standalone, Sentinel, Cluster) and memcached
 * all run it, and so can a backend of your own (`import { describeBackendConformance } from '@corral/core/testing'`).
 *
 * It is written against the public API of `@corral/core` only, as a third party would use it.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import {
  CachedValue,
  FORMAT_VERSION,
  LockTimeoutError,
  NO_VALUE,
  RegionRegistry,
  SerializationError,
  jsonSerializer,
  type BackendContext,
  type CacheBackend,
  type CacheMutex,
  type NoValue,
} from '../index.js'
import { measureWaiterLatency, reportFigure } from './measure.js'

export interface ConformanceInstance {
  backend: CacheBackend
  /** closes the backend and anything else `create` opened */
  cleanup?: () => Promise<void>
}

export interface ConformanceOptions {
  /** A new backend instance; `args` are extra backend arguments (e.g. `{ lockTimeout: 0.3 }`). */
  create: (args?: Record<string, unknown>) => Promise<ConformanceInstance>
  capabilities: {
    /** reads return what was written (false for `null`) */
    stores: boolean
    /** `getMutex` returns a lock that is exclusive across instances */
    distributedLock: boolean
    /** values are serialized: a value the serializer rejects fails with SerializationError */
    bytes?: boolean
    /**
     * invalidation marks (region-wide and per tag) of one instance reach another instance on the same server, and
     * the store is shared by instances
     */
    sharedInvalidation?: boolean
    /** `increment` and `setMultiWithTtl` (what `region.dependency()` needs) */
    counters?: boolean
  }
  /** Writes raw bytes under a backend key, as a foreign program would (byte backends). */
  writeRaw?: (storeKey: string, bytes: Buffer) => Promise<void>
  /**
   * Distributed locks: writes the lock of `key` (a key as a region passes it to `getMutex`) as a foreign program or
   * a corrupt write would leave it: a value that is not the backend's format, with an expiry of `ttlMs`, or none
   * when `ttlMs` is undefined. Used to check that such a lock blocks for at most one lock timeout.
   */
  writeForeignLock?: (key: string, ttlMs: number | undefined) => Promise<void>
  /**
   * Distributed locks: adds a test that a waiter on another instance gets the value soon after the creator finishes
   * (`measureWaiterLatency` over `trials` trials): no waiter runs its own creator, and the p99 stays under `p99Ms`.
   * `args` are the two instances' backend arguments (e.g. a 1 s `lockPollInterval`, so that only a wake-up can be
   * fast); `label` names the printed figure.
   */
  waiterLatency?: { label: string; trials: number; p99Ms: number; args?: Record<string, unknown> }
  /**
   * Distributed backends: the fault tests (a lock holder that died, a lock someone keeps re-taking, the server
   * crashing, freezing and restarting under a region), run against a server of their own.
   */
  faults?: FaultOptions
}

/**
 * Bytes someone else may leave under a key, each of which a backend reads as a miss: not this format at all (binary,
 * plain text, nothing), this format's header over a broken value (its creation time not a number, a truncated body,
 * flags that are not JSON), and whole values of a future and of an older format. The headers carry `createdAt`.
 * Used by the conformance suite and the fault suite's corrupt-bytes scenario.
 */
export function garbageBytes(createdAt: number): Buffer[] {
  return [
    Buffer.from([0xff, 0xfe, 0x00, 0x01, 0x0a, 0x80]),
    Buffer.from(`c${FORMAT_VERSION}:notanumber:v\n{"key":"x","version":1,"pid":1}`),
    Buffer.from(`c${FORMAT_VERSION}:${createdAt}:v\n{"truncated": `),
    Buffer.from(`c${FORMAT_VERSION}:${createdAt}:v:{not json\n{}`),
    Buffer.from(`c${FORMAT_VERSION + 1}:${createdAt}:v\n"a future format"`),
    Buffer.from(`c${FORMAT_VERSION - 1}:${createdAt}:v\n"an older format"`),
    Buffer.from('plain text someone SET by hand'),
    Buffer.alloc(0),
  ]
}

/** Control over the real server a distributed backend talks to. */
export interface ServerControl {
  /** The server goes away abruptly, as in a crash (SIGKILL): connections drop and new ones are refused. */
  kill(): Promise<void>
  /** Freezes the server (SIGSTOP): connections stay open and nothing is answered. */
  pause(): Promise<void>
  /** Thaws a paused server (SIGCONT); it answers what it was sent meanwhile. */
  resume(): Promise<void>
  /** Starts the server again on the same address, stopping it first if it runs; its data is lost. */
  restart(): Promise<void>
}

/** A server of the fault tests' own, with the backends that use it. */
export interface ControlledServer {
  /** Its faults: a crash, a freeze, a restart. A test-support server (`startRedis()`, `startMemcached()`) is one. */
  readonly control: ServerControl
  /** A new backend instance on this server; `args` as for `ConformanceOptions.create`. */
  create(args?: Record<string, unknown>): Promise<ConformanceInstance>
  /**
   * Makes the lock of `key` (a key as a region passes it to `getMutex`) held by someone else for `ttlMs`, whoever
   * holds it now: a lock nobody releases, as a process that died holding it leaves behind.
   */
  holdLock(key: string, ttlMs: number): Promise<void>
  /** Stops the server for good and removes what it left behind. */
  close(): Promise<void>
}

export interface FaultOptions {
  /** Starts the server (once, before the fault tests; `close()`d after them). */
  startServer: () => Promise<ControlledServer>
  /**
   * How long 20 `getOrCreate` calls may take in all, right after the server went away: the first ones may wait for
   * a command timeout, the others must fail at once. Default 1500 ms.
   */
  downBudgetMs?: number
  /**
   * Backend arguments that shorten its command timeouts, for the test that waits for them (a frozen server answers
   * nothing, so every command runs into its timeout), e.g. `{ commandTimeout: 0.2 }`.
   */
  shortTimeouts?: Record<string, unknown>
  /**
   * How long one `getOrCreate` may take while the server is frozen, with `shortTimeouts`: it reads, tries the lock
   * and writes, each bounded by the backend's command timeout. Default 5000 ms.
   */
  frozenBudgetMs?: number
}

/** One `acquire` of the lock: whether it was taken. */
const take = async (mutex: CacheMutex, wait: boolean): Promise<boolean> => (await mutex.acquire({ wait })).acquired

/** The backend's mutex for `k` (a distributed-lock backend always has one). */
function mutex(backend: CacheBackend, k: string): CacheMutex {
  const m = backend.getMutex?.(k)
  if (!m) throw new Error('getMutex returned no mutex')
  return m
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Polls `check` until it holds (or fails after `timeoutMs`). */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 3000, stepMs = 5): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`)
    await sleep(stepMs)
  }
}

const PAYLOADS: Array<[string, unknown]> = [
  ['nested object', { user: { id: 42, tags: ['a', 'b'], address: { city: 'Zürich', zip: null } }, score: 1.5 }],
  ['unicode string', 'unicode: 日本語 ✓ 🎉 ç — "quotes" \\ backslash \n newline'],
  ['empty string', ''],
  ['zero', 0],
  ['false', false],
  ['true', true],
  ['null', null],
  ['undefined', undefined],
  ['array', [1, 'two', null, { three: 3 }, []]],
  ['empty object', {}],
  ['large string', 'x'.repeat(200_000)],
]

export function describeBackendConformance(name: string, options: ConformanceOptions): void {
  const { create, capabilities } = options
  const open: ConformanceInstance[] = []
  const errors: Array<{ operation: string; error: unknown }> = []

  const context = (overrides: Partial<BackendContext> = {}): BackendContext => ({
    regionName: `conformance-${randomUUID().slice(0, 8)}`,
    expirationTime: undefined,
    serializer: jsonSerializer,
    reportError: (operation, error) => errors.push({ operation, error }),
    ...overrides,
  })

  /** A backend attached to a throwaway context, closed after the test. */
  const backendFor = async (args?: Record<string, unknown>): Promise<CacheBackend> => {
    const instance = await create(args)
    open.push(instance)
    instance.backend.attach?.(context())
    return instance.backend
  }

  /** A region over a fresh backend, with an injectable clock. */
  const regionFor = async (expirationTime: number | undefined, args?: Record<string, unknown>) => {
    const instance = await create(args)
    open.push(instance)
    let now = Date.now()
    const clock = { advance: (ms: number) => (now += ms), now: () => now }
    const registry = new RegionRegistry()
    const region = registry.createRegion({ name: `conformance-${randomUUID().slice(0, 8)}`, clock: clock.now })
    region.configure(instance.backend, expirationTime === undefined ? {} : { expirationTime })
    instance.cleanup = chain(
      () => region.close(),
      instance.cleanup ?? (() => instance.backend.close?.() ?? Promise.resolve()),
    )
    return { region, clock, backend: instance.backend }
  }

  const key = (label: string) => `conformance:${randomUUID()}:${label}`

  describe(`${name} backend conformance`, () => {
    afterEach(async () => {
      const instances = open.splice(0)
      await Promise.all(instances.map((i) => (i.cleanup ? i.cleanup() : (i.backend.close?.() ?? Promise.resolve()))))
    })

    if (capabilities.stores) {
      it('round-trips values through set/get: nested objects, unicode, null, undefined, large values', async () => {
        const backend = await backendFor()
        const ct = Date.now() - 1234.5
        const keys = PAYLOADS.map(([label]) => key(label))
        await Promise.all(PAYLOADS.map(([, payload], i) => backend.set(keys[i]!, CachedValue.create(payload, ct))))
        for (const [i, [label, payload]] of PAYLOADS.entries()) {
          const read = await backend.get(keys[i]!)
          expect(read, label).not.toBe(NO_VALUE)
          const value = read as CachedValue
          expect(value.payload, label).toEqual(payload)
          expect(value.metadata.ct, label).toBe(ct)
        }
      })

      it('reads a missing key as NO_VALUE', async () => {
        const backend = await backendFor()
        expect(await backend.get(key('missing'))).toBe(NO_VALUE)
      })

      it('getMulti answers in key order, NO_VALUE for missing keys, duplicates included', async () => {
        const backend = await backendFor()
        const [a, b, c] = [key('a'), key('b'), key('c')]
        await backend.set(a, CachedValue.create('A', 1))
        await backend.set(c, CachedValue.create({ c: true }, 3))
        const read = await backend.getMulti([c, b, a, c])
        expect(read.map(payloadOf)).toEqual([{ c: true }, NO_VALUE, 'A', { c: true }])
        expect(await backend.getMulti([])).toEqual([])
      })

      it('setMulti stores every entry; deleteMulti removes them and is idempotent', async () => {
        const backend = await backendFor()
        const keys = Array.from({ length: 25 }, (_, i) => key(`multi-${i}`))
        await backend.setMulti(keys.map((k, i) => [k, CachedValue.create({ i }, 10 + i)] as const))
        expect((await backend.getMulti(keys)).map(payloadOf)).toEqual(keys.map((_, i) => ({ i })))
        await backend.deleteMulti(keys.slice(0, 20))
        await backend.deleteMulti(keys.slice(0, 20))
        await backend.deleteMulti([])
        const read = await backend.getMulti(keys)
        expect(read.slice(0, 20).every((v) => v === NO_VALUE)).toBe(true)
        expect(read.slice(20).map(payloadOf)).toEqual([20, 21, 22, 23, 24].map((i) => ({ i })))
      })

      it('delete is idempotent and overwriting replaces the value', async () => {
        const backend = await backendFor()
        const k = key('delete')
        await backend.delete(k)
        await backend.set(k, CachedValue.create('first', 1))
        await backend.set(k, CachedValue.create('second', 2))
        expect(payloadOf(await backend.get(k))).toBe('second')
        await backend.delete(k)
        await backend.delete(k)
        expect(await backend.get(k)).toBe(NO_VALUE)
      })

      it('holds any string key: spaces, newlines, control characters, unicode, 300 characters', async () => {
        const backend = await backendFor()
        const long = key('long-') + 'k'.repeat(300)
        const odd = [
          key('with spaces and\ttabs'),
          key('line\nbreak\r\n'),
          key('control\u0000\u0007\u001f'),
          key('ключ-鍵-🔑'),
          long,
          `${long}-other`,
          key('non breaking\u00a0space'),
        ]
        await backend.setMulti(odd.map((k, i) => [k, CachedValue.create(`value ${i}`, i)] as const))
        expect((await backend.getMulti(odd)).map(payloadOf)).toEqual(odd.map((_, i) => `value ${i}`))
        for (const [i, k] of odd.entries()) expect(payloadOf(await backend.get(k))).toBe(`value ${i}`)
        await backend.delete(odd[0]!)
        expect(await backend.get(odd[0]!)).toBe(NO_VALUE)
      })
    } else {
      it('reads always miss, whatever was written', async () => {
        const backend = await backendFor()
        const k = key('null')
        await backend.set(k, CachedValue.create('x', 1))
        await backend.setMulti([[k, CachedValue.create('y', 2)]])
        expect(await backend.get(k)).toBe(NO_VALUE)
        expect(await backend.getMulti([k, k])).toEqual([NO_VALUE, NO_VALUE])
        await backend.delete(k)
        await backend.deleteMulti([k])
      })
    }

    if (capabilities.bytes) {
      it('a value the serializer rejects fails with SerializationError and stores nothing', async () => {
        const backend = await backendFor()
        const [good, bad] = [key('good'), key('bad')]
        await expect(backend.set(bad, CachedValue.create({ n: 10n }, 1))).rejects.toBeInstanceOf(SerializationError)
        await expect(
          backend.setMulti([
            [good, CachedValue.create('fine', 1)],
            [bad, CachedValue.create(() => 1, 1)],
          ]),
        ).rejects.toBeInstanceOf(SerializationError)
        expect(await backend.getMulti([good, bad])).toEqual([NO_VALUE, NO_VALUE])
      })
    }

    if (options.writeRaw) {
      const writeRaw = options.writeRaw
      it('garbage bytes written by someone else read as a miss, and getOrCreate replaces them', async () => {
        const { region, backend } = await regionFor(60)
        const garbage = garbageBytes(1_700_000_000_000)
        const keys = garbage.map((_, i) => key(`garbage-${i}`))
        await Promise.all(garbage.map((bytes, i) => writeRaw(keys[i]!, bytes)))
        for (const k of keys) expect(await backend.get(k)).toBe(NO_VALUE)
        expect(await backend.getMulti(keys)).toEqual(keys.map(() => NO_VALUE))
        for (const k of keys) expect(await region.getOrCreate(k, () => `fresh ${k}`)).toBe(`fresh ${k}`)
        for (const k of keys) expect(await region.get(k)).toBe(`fresh ${k}`)
      })
    }

    if (capabilities.stores) {
      describe('through a region', () => {
        it('getOrCreate runs the creator once for concurrent callers', async () => {
          const { region } = await regionFor(60)
          const k = key('once')
          let runs = 0
          const creator = async () => {
            runs++
            await sleep(30)
            return { made: runs }
          }
          const values = await Promise.all(Array.from({ length: 20 }, () => region.getOrCreate(k, creator)))
          expect(runs).toBe(1)
          expect(values.every((v) => v.made === 1)).toBe(true)
          expect(await region.get(k)).toEqual({ made: 1 })
          expect(await region.getOrCreate(k, creator)).toEqual({ made: 1 })
          expect(runs).toBe(1)
        })

        it('an expired value is a miss for get, served with ignoreExpiration, and regenerated by getOrCreate', async () => {
          const { region, clock } = await regionFor(10)
          const k = key('expiry')
          expect(await region.getOrCreate(k, () => 'old')).toBe('old')
          clock.advance(5_000)
          expect(await region.get(k)).toBe('old')
          clock.advance(6_000)
          expect(await region.get(k)).toBe(NO_VALUE)
          expect(await region.get(k, { ignoreExpiration: true })).toBe('old')
          expect(await region.getOrCreate(k, () => 'new')).toBe('new')
          expect(await region.get(k)).toBe('new')
        })

        it('hard invalidation makes every older value a miss', async () => {
          const { region, clock } = await regionFor(60)
          const [a, b] = [key('hard-a'), key('hard-b')]
          await region.set(a, 'A')
          await region.set(b, 'B')
          clock.advance(1)
          await region.invalidate()
          expect(await region.get(a)).toBe(NO_VALUE)
          expect(await region.get(b, { ignoreExpiration: true })).toBe(NO_VALUE)
          expect(await region.getOrCreate(a, () => 'A2')).toBe('A2')
          expect(await region.get(a)).toBe('A2')
        })

        it('soft invalidation serves the stale value while one caller regenerates', async () => {
          const { region, clock } = await regionFor(60)
          const k = key('soft')
          await region.set(k, 'old')
          clock.advance(1)
          await region.invalidate({ hard: false })
          expect(await region.get(k)).toBe(NO_VALUE)
          expect(await region.get(k, { ignoreExpiration: true })).toBe('old')
          let runs = 0
          const creator = async () => {
            runs++
            await sleep(50)
            return 'new'
          }
          const results = await Promise.all([region.getOrCreate(k, creator), region.getOrCreate(k, creator)])
          expect(runs).toBe(1)
          expect([...results].sort()).toEqual(['new', 'old'])
          expect(await region.get(k)).toBe('new')
        })
      })
    }

    if (capabilities.distributedLock) {
      describe('distributed lock', () => {
        it('is exclusive across instances, reported by locked(), and per key', async () => {
          const [one, two] = [await backendFor(), await backendFor()]
          const [k, other] = [key('lock'), key('lock-other')]
          const m1 = mutex(one, k)
          expect(await m1.locked()).toBe(false)
          expect(await take(m1, false)).toBe(true)
          expect(await m1.locked()).toBe(true)
          expect(await mutex(two, k).locked()).toBe(true)
          expect(await take(mutex(two, k), false)).toBe(false)
          expect(await take(mutex(one, k), false)).toBe(false)
          const m3 = mutex(two, other)
          expect(await take(m3, false)).toBe(true)
          await m3.release()
          await m1.release()
          expect(await m1.locked()).toBe(false)
          const m2 = mutex(two, k)
          expect(await take(m2, false)).toBe(true)
          await m2.release()
          await m2.release()
        })

        it('release never frees a lock someone else holds', async () => {
          const [one, two] = [await backendFor({ lockTimeout: 0.3 }), await backendFor({ lockTimeout: 0.3 })]
          const k = key('not-mine')
          const holder = mutex(one, k)
          const stranger = mutex(two, k)
          expect(await take(holder, false)).toBe(true)
          await stranger.release() // never acquired: a no-op
          expect(await stranger.locked()).toBe(true)
          // The holder's lock runs out and someone else takes it: the late release must not free it.
          await sleep(450)
          const next = mutex(two, k)
          expect(await take(next, false)).toBe(true)
          await holder.release()
          expect(await next.locked()).toBe(true)
          expect(await take(mutex(one, k), false)).toBe(false)
          await next.release()
          expect(await next.locked()).toBe(false)
        })

        it('acquire(true) waits for the holder to release', async () => {
          const [one, two] = [await backendFor(), await backendFor()]
          const k = key('wait')
          const holder = mutex(one, k)
          expect(await take(holder, false)).toBe(true)
          const started = performance.now()
          const waiting = take(mutex(two, k), true)
          await sleep(100)
          await holder.release()
          expect(await waiting).toBe(true)
          const waited = performance.now() - started
          expect(waited).toBeGreaterThanOrEqual(95)
          expect(waited).toBeLessThan(400)
        })

        it('acquire(true) takes the lock of a holder that never releases once its lockTimeout has passed', async () => {
          const [one, two] = [await backendFor({ lockTimeout: 0.5 }), await backendFor({ lockTimeout: 0.5 })]
          const k = key('dead-holder')
          expect(await take(mutex(one, k), false)).toBe(true)
          const started = performance.now()
          const waiter = mutex(two, k)
          expect(await take(waiter, true)).toBe(true)
          const waited = performance.now() - started
          expect(waited).toBeGreaterThanOrEqual(400)
          expect(waited).toBeLessThan(900)
          expect(await waiter.locked()).toBe(true)
          await waiter.release()
        })
      })
      describe('distributed lock: fenced stores, bounded foreign locks, no false timeouts', () => {
        /** The payload under `k` and its creation time, or NO_VALUE. */
        const stored = async (backend: CacheBackend, k: string) => {
          const value = await backend.get(k)
          return value === NO_VALUE ? NO_VALUE : { payload: value.payload, ct: value.ct }
        }

        it('release(store) stores the value and hands it to a waiter of another instance', async () => {
          const [one, two] = [await backendFor(), await backendFor()]
          const k = key('handed-over')
          const holder = mutex(one, k)
          const taken = await holder.acquire({ wait: false })
          expect(taken.acquired).toBe(true)
          // Read with the lock, where the backend does: nothing is there yet.
          if (taken.current !== undefined) expect(taken.current).toBe(NO_VALUE)
          const since = Date.now()
          const waiting = mutex(two, k).acquire({ wait: true })
          await sleep(50)
          const made = CachedValue.create({ made: 'by the holder' }, Date.now())
          expect(await holder.release({ value: made, since })).toBe(true)
          const waited = await waiting
          // Handed over with the release, or read with the lock once it was free: the holder's value either way.
          const seen = waited.acquired ? (waited.current ?? (await two.get(k))) : waited.produced
          expect(seen).toBeInstanceOf(CachedValue)
          expect((seen as CachedValue).payload).toEqual({ made: 'by the holder' })
          expect((seen as CachedValue).ct).toBe(made.ct)
          expect(await stored(one, k)).toEqual({ payload: { made: 'by the holder' }, ct: made.ct })
        })

        it('release(store) never overwrites a value created after `since` (a set() meanwhile), and still releases', async () => {
          const [one, two] = [await backendFor(), await backendFor()]
          const k = key('fenced-set')
          const since = Date.now() - 1000
          await one.set(k, CachedValue.create('old', since - 5000))
          const holder = mutex(one, k)
          const taken = await holder.acquire({ wait: true })
          expect(taken.acquired).toBe(true)
          if (taken.current !== undefined) expect((taken.current as CachedValue).payload).toBe('old')
          // While the creator runs, someone writes a newer value.
          await two.set(k, CachedValue.create('newer', since + 10))
          expect(await holder.release({ value: CachedValue.create('late', since + 20), since })).toBe(false)
          expect(await stored(two, k)).toEqual({ payload: 'newer', ct: since + 10 })
          expect(await holder.locked()).toBe(false)
          // A value older than `since` is replaced.
          const next = mutex(two, k)
          expect((await next.acquire({ wait: false })).acquired).toBe(true)
          expect(await next.release({ value: CachedValue.create('fresh', since + 30), since: since + 15 })).toBe(true)
          expect(await stored(one, k)).toEqual({ payload: 'fresh', ct: since + 30 })
        })

        it('a holder that lost its lock stores nothing: not over a takeover holder, not on a free lock', async () => {
          const [one, two] = [await backendFor({ lockTimeout: 0.3 }), await backendFor({ lockTimeout: 0.3 })]
          const [k, free] = [key('fenced-takeover'), key('fenced-free')]
          const late = mutex(one, k)
          const since = Date.now()
          expect((await late.acquire({ wait: false })).acquired).toBe(true)
          const lapsed = mutex(one, free)
          expect((await lapsed.acquire({ wait: false })).acquired).toBe(true)
          // Both holders stall past their lock timeout; another instance takes the first lock over and stores.
          await sleep(450)
          const takeover = mutex(two, k)
          expect((await takeover.acquire({ wait: false })).acquired).toBe(true)
          const theirs = CachedValue.create('takeover', Date.now())
          expect(await takeover.release({ value: theirs, since: Date.now() - 1 })).toBe(true)
          expect(await late.release({ value: CachedValue.create('late', Date.now() + 1), since })).toBe(false)
          expect(await stored(two, k)).toEqual({ payload: 'takeover', ct: theirs.ct })
          expect(await lapsed.release({ value: CachedValue.create('late', Date.now()), since })).toBe(false)
          expect(await two.get(free)).toBe(NO_VALUE)
        })

        it('setIfNotNewer is the same fence without a lock; a creation time from the future does not block it', async () => {
          const backend = await backendFor()
          if (!backend.setIfNotNewer) return
          const k = key('set-if-not-newer')
          const now = Date.now()
          expect(await backend.setIfNotNewer(k, CachedValue.create('first', now - 100), now - 200)).toBe(true)
          expect(await backend.setIfNotNewer(k, CachedValue.create('second', now - 50), now - 90)).toBe(true)
          expect(await backend.setIfNotNewer(k, CachedValue.create('stale', now - 40), now - 60)).toBe(false)
          expect(await stored(backend, k)).toEqual({ payload: 'second', ct: now - 50 })
          // A writer whose clock runs an hour ahead: its value is not believed newer (the region does not believe
          // it either), so it cannot block every fenced write for an hour.
          await backend.set(k, CachedValue.create('from the future', now + 3_600_000))
          expect(await backend.setIfNotNewer(k, CachedValue.create('now', now), now - 1)).toBe(true)
          expect(await stored(backend, k)).toEqual({ payload: 'now', ct: now })
        })

        it('a waiter keeps waiting while a new holder regenerates after a takeover (no false timeout)', async () => {
          const lockTimeout = 0.4
          const [dead, two, three] = [
            await backendFor({ lockTimeout }),
            await backendFor({ lockTimeout }),
            await backendFor({ lockTimeout }),
          ]
          const k = key('takeover-no-timeout')
          // A holder that dies: it never releases.
          expect((await mutex(dead, k).acquire({ wait: false })).acquired).toBe(true)
          const started = performance.now()
          /**
           * What a region does: wait; regenerate if it got the lock, for 300 ms: within its own lock timeout, but
           * beyond one lock timeout since the other contender began waiting.
           */
          const contend = async (backend: CacheBackend) => {
            const m = mutex(backend, k)
            const got = await m.acquire({ wait: true })
            if (!got.acquired) return { made: false, gaveUp: got.produced === undefined, value: got.produced?.payload }
            const current = got.current ?? (await backend.get(k))
            if (current !== NO_VALUE) {
              await m.release()
              return { made: false, gaveUp: false, value: current.payload }
            }
            const since = Date.now()
            await sleep(300)
            await m.release({ value: CachedValue.create('regenerated', Date.now()), since })
            return { made: true, gaveUp: false, value: 'regenerated' }
          }
          const results = await Promise.all([contend(two), contend(three)])
          const elapsed = performance.now() - started
          expect(results.filter((r) => r.made)).toHaveLength(1)
          expect(results.filter((r) => r.gaveUp)).toEqual([])
          expect(results.map((r) => r.value)).toEqual(['regenerated', 'regenerated'])
          expect(elapsed).toBeGreaterThanOrEqual(lockTimeout * 1000 + 300 - 50)
          expect(elapsed).toBeLessThan(lockTimeout * 1000 + 300 + 1000)
        })

        if (options.writeForeignLock) {
          const writeForeignLock = options.writeForeignLock
          it('a foreign lock key, without expiry or with a far one, blocks for at most one lock timeout', async () => {
            const lockTimeout = 0.4
            const backend = await backendFor({ lockTimeout })
            for (const ttlMs of [undefined, 3_600_000]) {
              const k = key(`foreign-${ttlMs ?? 'no-expiry'}`)
              await writeForeignLock(k, ttlMs)
              const started = performance.now()
              const m = mutex(backend, k)
              expect((await m.acquire({ wait: true })).acquired, `ttl ${ttlMs}`).toBe(true)
              const waited = performance.now() - started
              expect(waited).toBeLessThan(lockTimeout * 1000 + 500)
              await m.release()
            }
          })
        }
      })
    } else {
      it('has no exclusive lock: getMutex is absent, or its lock is always granted', async () => {
        const backend = await backendFor()
        const m = backend.getMutex?.(key('free'))
        if (m !== undefined) {
          expect(await take(m, false)).toBe(true)
          expect(await take(backend.getMutex!(key('free'))!, true)).toBe(true)
          expect(await m.locked()).toBe(false)
          await m.release()
        }
      })
    }

    if (capabilities.counters) {
      it('increment is atomic (across instances when shared), 0 reads without creating; setMultiWithTtl stores', async () => {
        const one = await backendFor()
        const two = capabilities.sharedInvalidation ? await backendFor() : one
        const counter = key('counter')
        expect(await one.increment!(counter, 0, 60)).toBe(0)
        expect(await two.increment!(counter, 0, 60)).toBe(0)
        const results = await Promise.all(
          Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? one : two).increment!(counter, 1, 60)),
        )
        expect([...results].sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1))
        expect(await two.increment!(counter, 5, 60)).toBe(45)
        expect(await one.increment!(counter, 0)).toBe(45)
        await one.deleteMulti([counter])
        expect(await two.increment!(counter, 0)).toBe(0)

        const [a, b] = [key('ttl-a'), key('ttl-b')]
        await one.setMultiWithTtl!(
          [
            [a, CachedValue.create('A', 1)],
            [b, CachedValue.create({ b: 1 }, 1)],
          ],
          60,
        )
        expect((await two.getMulti([a, b])).map(payloadOf)).toEqual(['A', { b: 1 }])
      })
    }

    if (capabilities.sharedInvalidation) {
      it('tag marks: made in one instance, loaded by others in one batch, max-merged, honoured at once where made', async () => {
        const [one, two, three] = [await backendFor(), await backendFor(), await backendFor()]
        const regionName = `conformance-tags-${randomUUID().slice(0, 8)}`
        const a = one.createInvalidator!(regionName)!
        const b = two.createInvalidator!(regionName)!
        const c = three.createInvalidator!(regionName)!
        const known = (invalidator: typeof b, tag: string) => async () => {
          if (invalidator.tagMarks!(tag) === undefined) await invalidator.loadTags!([tag])
          return invalidator.tagMarks!(tag)
        }
        try {
          expect(b.tagMarks!('t1')).toBeUndefined()
          await b.loadTags!(['t1', 't2'])
          expect(b.tagMarks!('t1')).toEqual({ hardAt: 0, softAt: 0 })
          const at = Date.now() + 0.001
          await a.invalidateTags!(['t1', 't2'], true, at)
          expect(a.tagMarks!('t1')).toEqual({ hardAt: at, softAt: 0 })
          await eventually(async () => (await known(b, 't1')())?.hardAt === at, 3000)
          await b.invalidateTags!(['t1'], false, at + 5)
          // An older mark never lowers a newer one.
          await b.invalidateTags!(['t1'], true, at - 10_000)
          expect(b.tagMarks!('t1')).toEqual({ hardAt: at, softAt: at + 5 })
          await eventually(async () => (await known(a, 't1')())?.softAt === at + 5, 3000)
          // A third instance loads several tags at once, never-invalidated ones included.
          await c.loadTags!(['t1', 't2', 't3'])
          expect([c.tagMarks!('t1'), c.tagMarks!('t2'), c.tagMarks!('t3')]).toEqual([
            { hardAt: at, softAt: at + 5 },
            { hardAt: at, softAt: 0 },
            { hardAt: 0, softAt: 0 },
          ])
        } finally {
          await Promise.all([a.close?.(), b.close?.(), c.close?.()])
        }
      })

      it('invalidation marks reach another instance and are max-merged', async () => {
        const [one, two] = [await backendFor(), await backendFor()]
        const regionName = `conformance-inv-${randomUUID().slice(0, 8)}`
        const a = one.createInvalidator!(regionName)!
        const b = two.createInvalidator!(regionName)!
        try {
          const at = Date.now() + 0.001
          await a.invalidate(true, at)
          expect(a.current().hardAt).toBe(at)
          await eventually(() => b.current().hardAt === at, 3000)
          await b.invalidate(false, at + 5)
          await eventually(() => a.current().softAt === at + 5, 3000)
          // An older mark never lowers a newer one.
          await b.invalidate(true, at - 10_000)
          expect(b.current().hardAt).toBe(at)
          await sleep(50)
          expect(a.current()).toEqual({ hardAt: at, softAt: at + 5 })
          // A third instance loads the marks when it starts.
          const three = await backendFor()
          const c = three.createInvalidator!(regionName)!
          await eventually(() => c.current().hardAt === at && c.current().softAt === at + 5, 3000)
          await c.close?.()
        } finally {
          await a.close?.()
          await b.close?.()
        }
      })
    }

    if (capabilities.distributedLock && options.waiterLatency) {
      const { label, trials, p99Ms, args } = options.waiterLatency
      it('a waiter on another instance sees the value soon after the creator finishes', async () => {
        const name = `latency-${randomUUID().slice(0, 8)}`
        const regionOn = async () => {
          const instance = await create(args)
          open.push(instance)
          const region = new RegionRegistry().createRegion({ name }).configure(instance.backend, { expirationTime: 60 })
          instance.cleanup = chain(
            () => region.close(),
            instance.cleanup ?? (() => instance.backend.close?.() ?? Promise.resolve()),
          )
          return region
        }
        const [a, b] = [await regionOn(), await regionOn()]
        const result = await measureWaiterLatency(a, b, trials)
        reportFigure(label, { p50: result.p50, p99: result.p99, max: Math.max(...result.latencies) })
        expect(result.waiterRuns).toBe(0)
        expect(result.p99).toBeLessThan(p99Ms)
      })
    }

    if (options.faults) {
      const faults = options.faults
      describe('server faults', () => {
        let server: ControlledServer

        beforeAll(async () => {
          server = await faults.startServer()
        })

        afterAll(async () => {
          await server?.close()
        })

        /** A region on a new backend of the fault server, and the backendError events it reports. */
        const faultRegion = async (args?: Record<string, unknown>) => {
          const instance = await server.create(args)
          open.push(instance)
          const region = new RegionRegistry().createRegion({ name: `faults-${randomUUID().slice(0, 8)}` })
          const backendErrors: Array<{ operation: string; error: unknown }> = []
          region.on('backendError', ({ operation, error }) => backendErrors.push({ operation, error }))
          region.configure(instance.backend, { expirationTime: 60 })
          instance.cleanup = chain(
            () => region.close(),
            instance.cleanup ?? (() => instance.backend.close?.() ?? Promise.resolve()),
          )
          return { region, backendErrors }
        }

        describe('a waiter whose wait reaches lockTimeout', () => {
          const lockTimeout = 0.6

          it('gets LockTimeoutError only when one holder keeps the lock for three lock timeouts', async () => {
            const { region } = await faultRegion({ lockTimeout })
            const k = key('retaken')
            // Someone keeps the lock alive and never releases it: no holder makes progress.
            await server.holdLock(k, 300)
            const hog = setInterval(() => void server.holdLock(k, 300).catch(() => {}), 100)
            try {
              const started = performance.now()
              let runs = 0
              const error = await region.getOrCreate(k, () => ++runs).catch((e: unknown) => e)
              const waited = performance.now() - started
              expect(error).toBeInstanceOf(LockTimeoutError)
              expect((error as LockTimeoutError).code).toBe('E_LOCK_TIMEOUT')
              expect(runs).toBe(0)
              // A live holder is entitled to its lock: a waiter gives up only after 3 lock timeouts without progress.
              expect(waited).toBeGreaterThanOrEqual(3 * lockTimeout * 1000 - 5)
              expect(waited).toBeLessThan(3 * lockTimeout * 1000 + 400)
            } finally {
              clearInterval(hog)
            }
          })

          it('takes over the expired lock of a holder that died and regenerates, even at the edge of lockTimeout', async () => {
            const { region } = await faultRegion({ lockTimeout })
            for (const ttl of [300, lockTimeout * 1000]) {
              const k = key(`dead-${ttl}`)
              // A holder that took the lock (for the full lockTimeout) just before we came, then died.
              await server.holdLock(k, ttl)
              const started = performance.now()
              expect(await region.getOrCreate(k, () => 'regenerated')).toBe('regenerated')
              const waited = performance.now() - started
              expect(waited).toBeGreaterThanOrEqual(ttl - 20)
              expect(waited).toBeLessThan(ttl + 300)
            }
          })
        })

        describe('outages', () => {
          it('answers from the creator while the server is down, reports backendError, and recovers by itself', async () => {
            const unhandled: unknown[] = []
            const onUnhandled = (reason: unknown) => unhandled.push(reason)
            process.on('unhandledRejection', onUnhandled)
            try {
              const { region, backendErrors } = await faultRegion()
              const [a, w, c, after] = [key('a'), key('w'), key('c'), key('after')]
              expect(await region.getOrCreate(a, () => 'A1')).toBe('A1')
              expect(await region.getOrCreate(a, () => 'A2')).toBe('A1')
              // A waiter blocked on someone else's lock when the server dies must not hang either.
              await server.holdLock(w, 30_000)
              const waiting = region.getOrCreate(w, () => 'W')
              await sleep(50)

              await server.control.kill()
              const started = performance.now()
              expect(await waiting).toBe('W')
              for (let i = 0; i < 20; i++) expect(await region.getOrCreate(key(`b${i}`), () => `B${i}`)).toBe(`B${i}`)
              const elapsed = performance.now() - started
              // at most one command timeout, then every call fails at once
              expect(elapsed).toBeLessThan(faults.downBudgetMs ?? 1500)
              const single = performance.now()
              expect(await region.getOrCreate(c, () => 'C')).toBe('C')
              expect(performance.now() - single).toBeLessThan(50)
              expect(await region.get(a)).toBe(NO_VALUE)
              expect(backendErrors.length).toBeGreaterThan(0)
              expect(new Set(backendErrors.map((e) => e.operation))).toContain('get')
              await expect(region.invalidate()).rejects.toMatchObject({ code: 'E_BACKEND' })

              await server.control.restart()
              await eventually(
                async () => {
                  await region.getOrCreate(after, () => 'stored')
                  return (await region.get(after)) === 'stored'
                },
                5000,
                50,
              )
              expect(await region.getOrCreate(after, () => 'again')).toBe('stored')
              if (capabilities.sharedInvalidation) {
                // The invalidation made during the outage was kept locally and written back once the server
                // returned: a process that starts now reads it from the server.
                const witness = await server.create()
                open.push(witness)
                witness.backend.attach?.(context())
                const marks = witness.backend.createInvalidator!(region.name)!
                try {
                  await eventually(() => marks.current().hardAt > 0, 3000, 50)
                  expect(marks.current().hardAt).toBe(region.invalidationState().hardAt)
                } finally {
                  await marks.close?.()
                }
              }
              await sleep(10)
              expect(unhandled).toEqual([])
            } finally {
              process.off('unhandledRejection', onUnhandled)
            }
          })

          it('answers while the server is down at startup, then connects when it comes up', async () => {
            await server.control.kill()
            const { region, backendErrors } = await faultRegion()
            const x = key('x')
            const started = performance.now()
            expect(await region.getOrCreate(x, () => 'X1')).toBe('X1')
            expect(await region.getOrCreate(x, () => 'X2')).toBe('X2')
            expect(performance.now() - started).toBeLessThan(1500)
            expect(backendErrors.length).toBeGreaterThan(0)
            await server.control.restart()
            await eventually(
              async () => {
                await region.getOrCreate(x, () => 'X3')
                return (await region.get(x)) === 'X3'
              },
              5000,
              50,
            )
          })

          it('a frozen server (SIGSTOP) strands no caller: each call answers within its timeouts, and all is well after it thaws', async () => {
            const unhandled: unknown[] = []
            const onUnhandled = (reason: unknown) => unhandled.push(reason)
            process.on('unhandledRejection', onUnhandled)
            const { region, backendErrors } = await faultRegion(faults.shortTimeouts)
            const [before, during] = [key('before'), key('during')]
            try {
              expect(await region.getOrCreate(before, () => 'B1')).toBe('B1')
              await server.control.pause()
              const started = performance.now()
              expect(await region.getOrCreate(during, () => 'D1')).toBe('D1')
              const frozenMs = performance.now() - started
              reportFigure(`${name} getOrCreate on a frozen server (ms)`, { frozenMs })
              expect(frozenMs).toBeLessThan(faults.frozenBudgetMs ?? 5000)
              expect(new Set(backendErrors.map((e) => e.operation))).toContain('get')
            } finally {
              await server.control.resume()
            }
            try {
              // Thawed: what was stored before is read again, and new values are stored.
              await eventually(async () => (await region.get(before)) === 'B1', 5000, 50)
              await eventually(
                async () => {
                  await region.getOrCreate(during, () => 'D2')
                  return (await region.get(during)) !== NO_VALUE
                },
                5000,
                50,
              )
              await sleep(10)
              expect(unhandled).toEqual([])
            } finally {
              process.off('unhandledRejection', onUnhandled)
            }
          })
        })
      })
    }

    it('close() can be called twice', async () => {
      const instance = await create()
      instance.backend.attach?.(context())
      await instance.backend.close?.()
      await instance.backend.close?.()
      await instance.cleanup?.()
    })
  })
}

function payloadOf(value: CachedValue | NoValue): unknown {
  return value === NO_VALUE ? NO_VALUE : value.payload
}

function chain(first: () => Promise<void>, second: () => Promise<void>): () => Promise<void> {
  return async () => {
    try {
      await first()
    } finally {
      await second()
    }
  }
}
