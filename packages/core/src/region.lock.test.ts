/**
 * The dogpile lock: what concurrent callers of getOrCreate observe. Time is injected (no sleeps); slow creators
 * are creators that wait on a promise the test resolves.
 */
import { describe, expect, it } from 'vitest'
import {
  CachedValue,
  MemoryBackend,
  NO_VALUE,
  RegionRegistry,
  SerializationError,
  createRegion,
  type CacheMutex,
  type RegionEventMap,
} from './index.js'
import { deferred } from './test-support/deferred.js'

function setup(options: { expirationTime?: number; backend?: MemoryBackend; asyncRunner?: boolean } = {}) {
  let now = 1_000_000
  const clock = { now: () => now, advance: (ms: number) => (now += ms) }
  const registry = new RegionRegistry()
  const region = createRegion({ name: 'lock', registry, clock: clock.now }).configure(
    options.backend ?? 'memory',
    options.expirationTime === undefined ? {} : { expirationTime: options.expirationTime },
  )
  const events: Array<{ name: keyof RegionEventMap; payload: unknown }> = []
  for (const name of ['hit', 'miss', 'stale', 'regenerate', 'lockWait', 'coalesced'] as const) {
    region.on(name, (payload) => events.push({ name, payload }))
  }
  return { region, clock, registry, events }
}

/** Lets pending promise callbacks run. */
const flush = () => new Promise((resolve) => setImmediate(resolve))

describe('getOrCreate on a cold key', () => {
  it('runs the creator once for 1000 concurrent callers and gives all of them its value', async () => {
    const { region } = setup({ expirationTime: 60 })
    let runs = 0
    const gate = deferred()
    const creator = async () => {
      runs++
      await gate.promise
      return { id: 7, name: 'ada' }
    }
    const calls = Array.from({ length: 1000 }, () => region.getOrCreate('user:7', creator))
    await flush()
    expect(await region.keyIsLocked('user:7')).toBe(true)
    gate.resolve()
    const values = await Promise.all(calls)

    expect(runs).toBe(1)
    expect(new Set(values).size).toBe(1)
    expect(values[0]).toEqual({ id: 7, name: 'ada' })
    expect(await region.keyIsLocked('user:7')).toBe(false)
    const stats = region.statsSnapshot()
    expect(stats.regenerations).toBe(1)
    expect(stats.coalescedWaited).toBe(999)
    expect(stats.misses).toBe(1000)
    expect(region.registry.recentStampedes()).toEqual([
      expect.objectContaining({ region: 'lock', key: 'user:7', coalesced: 999 }),
    ])
  })

  it('returns a fresh value without touching the lock', async () => {
    const backend = new RecordingLockBackend()
    const { region } = setup({ expirationTime: 60, backend })
    await region.getOrCreate('k', () => 1)
    backend.mutexRequests = 0
    expect(await region.getOrCreate('k', () => 2)).toBe(1)
    expect(backend.mutexRequests).toBe(0)
  })

  it('rejects the caller and every waiter when the creator throws, releases the lock, and retries next time', async () => {
    const { region, events } = setup({ expirationTime: 60 })
    const gate = deferred()
    const failure = new Error('database down')
    let runs = 0
    const failing = async () => {
      runs++
      await gate.promise
      throw failure
    }
    const calls = Array.from({ length: 20 }, () => region.getOrCreate('k', failing))
    const settled = Promise.allSettled(calls)
    gate.resolve()
    const results = await settled
    expect(runs).toBe(1)
    expect(results.every((r) => r.status === 'rejected' && r.reason === failure)).toBe(true)
    expect(await region.keyIsLocked('k')).toBe(false)
    expect(await region.get('k')).toBe(NO_VALUE)
    expect(events.filter((e) => e.name === 'regenerate').map((e) => e.payload)).toEqual([
      { region: 'lock', keys: ['k'], duration: expect.any(Number), outcome: 'error', error: failure },
    ])

    expect(await region.getOrCreate('k', async () => 'recovered')).toBe('recovered')
    expect(runs).toBe(1)
    expect(region.statsSnapshot().regenerationErrors).toBe(1)
    expect(region.statsSnapshot().regenerations).toBe(1)
  })

  it('gives waiters the value even when shouldCache declines to store it', async () => {
    const { region } = setup({ expirationTime: 60 })
    let runs = 0
    const gate = deferred()
    const creator = async () => {
      runs++
      await gate.promise
      return null
    }
    const calls = Array.from({ length: 10 }, () => region.getOrCreate('k', creator, { shouldCache: (v) => v !== null }))
    gate.resolve()
    expect(await Promise.all(calls)).toEqual(Array.from({ length: 10 }, () => null))
    expect(runs).toBe(1)
    expect(await region.get('k')).toBe(NO_VALUE)
    await region.getOrCreate('k', creator, { shouldCache: (v) => v !== null })
    expect(runs).toBe(2)
  })

  it('fails the caller and its waiters with SerializationError, stores nothing and leaves no lock', async () => {
    const { region } = setup({ expirationTime: 60, backend: new MemoryBackend({ serialize: true }) })
    const gate = deferred()
    const circular: Record<string, unknown> = {}
    circular.self = circular
    const calls = Array.from({ length: 5 }, () =>
      region.getOrCreate('k', async () => {
        await gate.promise
        return circular
      }),
    )
    const settled = Promise.allSettled(calls)
    gate.resolve()
    const results = await settled
    expect(results.every((r) => r.status === 'rejected' && r.reason instanceof SerializationError)).toBe(true)
    expect(await region.keyIsLocked('k')).toBe(false)
    expect(await region.get('k')).toBe(NO_VALUE)
    expect(await region.getOrCreate('k', () => ({ ok: true }))).toEqual({ ok: true })
  })
})

describe('getOrCreate on a stale value', () => {
  async function staleScenario(makeStale: (ctx: ReturnType<typeof setup>) => Promise<void>) {
    const ctx = setup({ expirationTime: 10 })
    const { region } = ctx
    await region.getOrCreate('report', () => 'v1')
    await makeStale(ctx)

    let runs = 0
    const gate = deferred()
    const slowCreator = async () => {
      runs++
      await gate.promise
      return 'v2'
    }
    const answered: string[] = []
    const calls = Array.from({ length: 50 }, (_, i) =>
      region.getOrCreate('report', slowCreator).then((value) => {
        answered[i] = value
        return value
      }),
    )
    // The creator is still blocked: the 49 other callers must already have their answer.
    await flush()
    const servedWhileRegenerating = answered.filter((v) => v !== undefined)
    gate.resolve()
    const values = await Promise.all(calls)
    return { ...ctx, runs, servedWhileRegenerating, values }
  }

  it('after expiry: 50 callers, one regenerates, 49 get the old value at once', async () => {
    const { runs, servedWhileRegenerating, values, region, events } = await staleScenario(async ({ clock }) => {
      clock.advance(11_000)
    })
    expect(runs).toBe(1)
    expect(servedWhileRegenerating).toEqual(Array.from({ length: 49 }, () => 'v1'))
    expect(values.filter((v) => v === 'v2')).toHaveLength(1)
    expect(await region.get('report')).toBe('v2')
    const stats = region.statsSnapshot()
    expect(stats.stale).toBe(49)
    expect(stats.coalescedStale).toBe(49)
    expect(events.find((e) => e.name === 'stale')?.payload).toEqual({ region: 'lock', key: 'report', age: 11 })
    expect(
      events.find((e) => e.name === 'miss' && (e.payload as { reason: string }).reason === 'expired'),
    ).toBeDefined()
  })

  it('after soft invalidation: the same, with the miss reason "invalidated"', async () => {
    const { runs, servedWhileRegenerating, region, events } = await staleScenario(async ({ region, clock }) => {
      clock.advance(1)
      await region.invalidate({ hard: false })
      clock.advance(1)
    })
    expect(runs).toBe(1)
    expect(servedWhileRegenerating).toEqual(Array.from({ length: 49 }, () => 'v1'))
    expect(await region.get('report')).toBe('v2')
    expect(events.filter((e) => e.name === 'miss').map((e) => e.payload)).toEqual([
      { region: 'lock', key: 'report', reason: 'absent' },
      { region: 'lock', key: 'report', reason: 'invalidated' },
    ])
  })

  it('after hard invalidation nobody gets the old value: all wait for the one creator', async () => {
    const { runs, servedWhileRegenerating, values } = await staleScenario(async ({ region, clock }) => {
      clock.advance(1)
      await region.invalidate({ hard: true })
      clock.advance(1)
    })
    expect(runs).toBe(1)
    expect(servedWhileRegenerating).toEqual([])
    expect(values).toEqual(Array.from({ length: 50 }, () => 'v2'))
  })

  it('hands the regeneration to the async creation runner and returns the stale value at once', async () => {
    const { clock, registry } = setup()
    const handed: Array<{ key: string; creator: () => Promise<unknown>; release: () => Promise<void> }> = []
    const region = createRegion({
      name: 'async',
      registry,
      clock: clock.now,
      asyncCreationRunner: (_region, key, creator, mutex) => {
        handed.push({ key, creator, release: () => mutex.release() })
      },
    }).configure('memory', { expirationTime: 10 })
    await region.getOrCreate('k', () => 'old')
    clock.advance(11_000)

    let runs = 0
    const creator = async () => {
      runs++
      return 'new'
    }
    expect(await region.getOrCreate('k', creator)).toBe('old')
    expect(handed.map((h) => h.key)).toEqual(['k'])
    expect(runs).toBe(0)
    // The runner holds the lock until it releases it: other callers keep getting the stale value.
    expect(await region.keyIsLocked('k')).toBe(true)
    expect(await region.getOrCreate('k', creator)).toBe('old')
    expect(handed).toHaveLength(1)

    await handed[0]!.creator()
    await handed[0]!.release()
    expect(runs).toBe(1)
    expect(await region.keyIsLocked('k')).toBe(false)
    expect(await region.getOrCreate('k', creator)).toBe('new')
  })

  it('releases the lock when an async runner returns a promise that settles, even if it forgets to', async () => {
    const { clock, registry } = setup()
    const region = createRegion({
      name: 'async-promise',
      registry,
      clock: clock.now,
      asyncCreationRunner: async (_region, _key, creator) => {
        await creator()
      },
    }).configure('memory', { expirationTime: 10 })
    await region.getOrCreate('k', () => 1)
    clock.advance(11_000)
    expect(await region.getOrCreate('k', () => 2)).toBe(1)
    await flush()
    expect(await region.keyIsLocked('k')).toBe(false)
    expect(await region.get('k')).toBe(2)
  })
})

describe('getOrCreateMulti under concurrency', () => {
  it('creates each key once across overlapping calls, passing the creator only its keys, sorted', async () => {
    const { region } = setup({ expirationTime: 60 })
    await region.set('b', 'cached-b')
    const received: string[][] = []
    const gate = deferred()
    const creator = async (...keys: string[]) => {
      received.push(keys)
      await gate.promise
      return keys.map((k) => `made-${k}`)
    }
    const first = region.getOrCreateMulti(['c', 'b', 'a'], creator)
    await flush()
    const second = region.getOrCreateMulti(['a', 'd', 'c'], creator)
    await flush()
    gate.resolve()
    expect(await first).toEqual(['made-c', 'cached-b', 'made-a'])
    expect(await second).toEqual(['made-a', 'made-d', 'made-c'])
    expect(received).toEqual([['a', 'c'], ['d']])
  })

  it('rejects a creator that returns the wrong number of values, and leaves no lock', async () => {
    const { region } = setup({ expirationTime: 60 })
    await expect(region.getOrCreateMulti(['a', 'b'], async () => ['only-one'])).rejects.toThrow(/one value per key/)
    expect(await region.keyIsLocked('a')).toBe(false)
    expect(await region.getOrCreateMulti(['a', 'b'], async (...keys) => keys)).toEqual(['a', 'b'])
  })
})

describe('with a backend that has a distributed lock', () => {
  it('serves the stale value when another process holds the lock', async () => {
    const backend = new RecordingLockBackend()
    const { region, clock } = setup({ expirationTime: 10, backend })
    await region.getOrCreate('k', () => 'old')
    clock.advance(11_000)
    backend.heldElsewhere.add('k')
    backend.attempts = []
    let runs = 0
    expect(await region.getOrCreate('k', () => (runs++, 'new'))).toBe('old')
    expect(runs).toBe(0)
    expect(backend.attempts).toEqual([{ key: 'k', wait: false }])
  })

  it('re-reads after waiting for the lock and skips the creator when another process made the value', async () => {
    const backend = new RecordingLockBackend()
    const { region, events } = setup({ expirationTime: 10, backend })
    backend.onWait = async (key) => {
      // Another process stores the value while we wait, then releases its lock.
      await flush()
      await backend.set(key, CachedValue.create('from-elsewhere', 1_000_000))
    }
    let runs = 0
    const values = await Promise.all(Array.from({ length: 10 }, () => region.getOrCreate('k', () => (runs++, 'mine'))))
    expect(values).toEqual(Array.from({ length: 10 }, () => 'from-elsewhere'))
    expect(runs).toBe(0)
    // One caller per process talks to the distributed lock; the others joined it in-process.
    expect(backend.attempts).toEqual([{ key: 'k', wait: true }])
    expect(backend.released).toEqual(['k'])
    expect(events.filter((e) => e.name === 'coalesced')).toHaveLength(10)
  })

  it('regenerates when the lock server fails, and reports it', async () => {
    const backend = new RecordingLockBackend()
    backend.failLock = true
    const { region, registry } = setup({ expirationTime: 10, backend })
    const errors: unknown[] = []
    registry.on('backendError', (payload) => errors.push(payload))
    expect(await region.getOrCreate('k', () => 'made anyway')).toBe('made anyway')
    expect(errors).toEqual([{ region: 'lock', operation: 'lock', error: expect.any(Error) }])
  })
})

/** A memory backend with a scriptable "distributed" mutex, to drive the region's cross-process paths. */
class RecordingLockBackend extends MemoryBackend {
  mutexRequests = 0
  attempts: Array<{ key: string; wait: boolean }> = []
  released: string[] = []
  heldElsewhere = new Set<string>()
  failLock = false
  onWait: ((key: string) => Promise<void>) | undefined

  getMutex(key: string): CacheMutex {
    this.mutexRequests++
    return {
      acquire: async ({ wait }) => {
        this.attempts.push({ key, wait })
        if (this.failLock) throw new Error('lock server unreachable')
        if (wait && this.onWait) await this.onWait(key)
        return { acquired: !this.heldElsewhere.has(key) }
      },
      release: async (store) => {
        this.released.push(key)
        if (store === undefined) return false
        await this.set(key, store.value)
        return true
      },
      locked: async () => this.heldElsewhere.has(key),
    }
  }
}
