/**
 * Resilience: fail-safe, soft and hard creator timeouts, eager refresh, expiry jitter and the creator's context,
 * with real timers (the timeouts are real setTimeouts; the margins are wide enough for a loaded machine). Expiry
 * is driven by an injected clock where the test needs a value to become stale.
 */
import { Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import {
  CreatorTimeoutError,
  NO_VALUE,
  RegionRegistry,
  ValidationError,
  createRegion,
  type CreatorContext,
  type RegionEventMap,
  type RegionEventName,
} from '../index.js'
import { deferred } from '../test-support/deferred.js'

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

function setup(configure: Record<string, unknown> = {}, memory: Record<string, unknown> = {}) {
  let now = Date.now()
  const clock = { now: () => now, advance: (ms: number) => (now += ms) }
  const registry = new RegionRegistry()
  const region = createRegion({ name: 'resilient', registry, clock: clock.now }).configure('memory', {
    expirationTime: 10,
    arguments: memory,
    ...configure,
  })
  const events: Array<{ name: RegionEventName; payload: unknown }> = []
  for (const name of ['failSafe', 'timeout', 'regenerate', 'stale', 'miss', 'hit'] as const)
    region.on(name, (payload) => events.push({ name, payload }))
  const named = <N extends RegionEventName>(name: N) =>
    events.filter((e) => e.name === name).map((e) => e.payload as RegionEventMap[N])
  return { region, clock, registry, events, named }
}

describe('fail-safe', () => {
  it('serves a stale value no older than maxStaleAge when the creator throws, to the caller and every waiter', async () => {
    const { region, clock, named } = setup({ failSafe: { maxStaleAge: '1h' } })
    await region.getOrCreate('price', () => 100)
    clock.advance(11_000) // expired: stale
    const boom = new Error('upstream is down')
    const gate = deferred()
    let runs = 0
    const creator = async () => {
      runs++
      await gate.promise
      throw boom
    }
    const callers = Array.from({ length: 20 }, () => region.getOrCreate('price', creator))
    gate.resolve()
    expect(await Promise.all(callers)).toEqual(Array(20).fill(100))
    expect(runs).toBe(1)
    expect(named('failSafe')).toEqual([{ region: 'resilient', key: 'price', age: 11, error: boom }])
    expect(region.statsSnapshot().failSafe).toBe(1)
  })

  it('does not serve a value older than maxStaleAge: the error reaches the caller', async () => {
    const { region, clock, named } = setup({ failSafe: { maxStaleAge: '30s' } })
    await region.getOrCreate('price', () => 100)
    clock.advance(31_000)
    await expect(region.getOrCreate('price', () => Promise.reject(new Error('down')))).rejects.toThrow('down')
    expect(named('failSafe')).toEqual([])
  })

  it('does not apply without a stale value, nor to a hard-invalidated one', async () => {
    const { region } = setup({ failSafe: { maxStaleAge: '1h' } })
    await expect(region.getOrCreate('cold', () => Promise.reject(new Error('cold fail')))).rejects.toThrow('cold fail')
    await region.getOrCreate('k', () => 'v1')
    await region.invalidate({ hard: true })
    await expect(region.getOrCreate('k', () => Promise.reject(new Error('after hard')))).rejects.toThrow('after hard')
  })

  it('trusts the fail-safe value again for the throttle, keeping its creation time, so the source is not hammered', async () => {
    const { region, clock } = setup({ failSafe: { maxStaleAge: '1h', throttle: '5s' } })
    await region.getOrCreate('k', () => 'v1')
    const created = (await region.getValueMetadata('k'))!.cachedTime
    clock.advance(11_000)
    let runs = 0
    const failing = () => {
      runs++
      throw new Error('down')
    }
    expect(await region.getOrCreate('k', failing)).toBe('v1')
    expect(runs).toBe(1)
    // Within the throttle: a hit, the creator is not called.
    clock.advance(4_000)
    expect(await region.getOrCreate('k', failing)).toBe('v1')
    expect(await region.get('k')).toBe('v1')
    expect(runs).toBe(1)
    expect((await region.getValueMetadata('k'))!.cachedTime).toBe(created)
    // After the throttle: the creator is tried again (and fails again: fail-safe again).
    clock.advance(2_000)
    expect(await region.getOrCreate('k', failing)).toBe('v1')
    expect(runs).toBe(2)
    // maxStaleAge still counts from the original creation.
    clock.advance(3_600_000)
    await expect(region.getOrCreate('k', failing)).rejects.toThrow('down')
  })

  it('is turned off per call with failSafe: false, and on per call for a region without it', async () => {
    const on = setup({ failSafe: { maxStaleAge: '1h' } })
    await on.region.getOrCreate('k', () => 1)
    on.clock.advance(11_000)
    await expect(on.region.getOrCreate('k', () => Promise.reject(new Error('x')), { failSafe: false })).rejects.toThrow(
      'x',
    )

    const off = setup()
    await off.region.getOrCreate('k', () => 1)
    off.clock.advance(11_000)
    expect(
      await off.region.getOrCreate('k', () => Promise.reject(new Error('x')), { failSafe: { maxStaleAge: 60 } }),
    ).toBe(1)
  })

  it('counts a creator that throws undefined as a failed regeneration', async () => {
    const { region, named } = setup()
    await expect(
      region.getOrCreate('k', () => {
        throw undefined
      }),
    ).rejects.toBeUndefined()
    expect(named('regenerate').map((e) => e.outcome)).toEqual(['error'])
    expect(region.statsSnapshot()).toMatchObject({ regenerations: 0, regenerationErrors: 1 })
  })
})

describe('soft timeout', () => {
  it('serves the stale value to the caller and every waiter, then stores the late value in the background', async () => {
    const { region, clock, named } = setup({ softTimeout: 0.05 })
    await region.getOrCreate('report', () => 'old')
    clock.advance(11_000)
    const gate = deferred()
    let runs = 0
    const slow = async () => {
      runs++
      await gate.promise
      return 'new'
    }
    const started = performance.now()
    const [leader, ...others] = await Promise.all(Array.from({ length: 5 }, () => region.getOrCreate('report', slow)))
    expect(performance.now() - started).toBeLessThan(1000)
    expect([leader, ...others]).toEqual(Array(5).fill('old'))
    expect(named('timeout')).toEqual([{ region: 'resilient', key: 'report', kind: 'soft' }])
    // The creator is still running and holds the lock: no second creator.
    expect(await region.keyIsLocked('report')).toBe(true)
    expect(await region.getOrCreate('report', slow)).toBe('old')
    expect(runs).toBe(1)
    gate.resolve()
    await expect.poll(() => region.get('report')).toBe('new')
    expect(await region.keyIsLocked('report')).toBe(false)
    expect(region.statsSnapshot().softTimeouts).toBe(1)
  })

  it('does not apply without a stale value: the caller waits for the creator', async () => {
    const { region, named } = setup({ softTimeout: 0.02 })
    const value = await region.getOrCreate('cold', async () => (await sleep(80), 'made'))
    expect(value).toBe('made')
    expect(named('timeout')).toEqual([])
  })
})

describe('hard timeout', () => {
  it('answers the caller and every waiter with CreatorTimeoutError, aborts the signal and releases the lock', async () => {
    const { region, named } = setup({ hardTimeout: 0.1 })
    let signal: AbortSignal | undefined
    const hanging = (context: CreatorContext<string>) => {
      signal = context.signal
      return new Promise<string>(() => {}) // never settles
    }
    const callers = Array.from({ length: 20 }, () => region.getOrCreate('k', hanging))
    const results = await Promise.allSettled(callers)
    expect(results.every((r) => r.status === 'rejected' && r.reason instanceof CreatorTimeoutError)).toBe(true)
    expect((results[0] as PromiseRejectedResult).reason.code).toBe('E_CREATOR_TIMEOUT')
    expect(signal!.aborted).toBe(true)
    expect(signal!.reason).toBeInstanceOf(CreatorTimeoutError)
    expect(await region.keyIsLocked('k')).toBe(false)
    expect(named('timeout')).toEqual([{ region: 'resilient', key: 'k', kind: 'hard' }])
    // The next call starts a new regeneration.
    expect(await region.getOrCreate('k', () => 'recovered')).toBe('recovered')
  })

  it('falls back to fail-safe, and the timeout error is what the failSafe event carries', async () => {
    const { region, clock, named } = setup({ hardTimeout: 0.1, failSafe: { maxStaleAge: '1h' } })
    await region.getOrCreate('k', () => 'old')
    clock.advance(11_000)
    expect(await region.getOrCreate('k', () => new Promise<string>(() => {}))).toBe('old')
    const [event] = named('failSafe')
    expect(event!.error).toBeInstanceOf(CreatorTimeoutError)
  })

  it('does not store what an abandoned creator makes late', async () => {
    const { region } = setup({ hardTimeout: 0.05 })
    const late = deferred()
    await expect(region.getOrCreate('k', async () => (await late.promise, 'late'))).rejects.toBeInstanceOf(
      CreatorTimeoutError,
    )
    late.resolve()
    await sleep(20)
    expect(await region.get('k')).toBe(NO_VALUE)
  })

  it('without hardTimeout, the lock timeout bounds a hanging creator: no caller waits for ever', async () => {
    const { region } = setup({}, { lockTimeout: 0.15 })
    const started = performance.now()
    const callers = Array.from({ length: 20 }, () => region.getOrCreate('k', () => new Promise<string>(() => {})))
    const results = await Promise.allSettled(callers)
    expect(results.every((r) => r.status === 'rejected' && r.reason instanceof CreatorTimeoutError)).toBe(true)
    expect(performance.now() - started).toBeGreaterThanOrEqual(140)
    expect((results[0] as PromiseRejectedResult).reason.message).toMatch(/lock timeout; set hardTimeout/)
  })

  it('a stale key whose regeneration hangs is served stale until the bound, then regenerated', async () => {
    const { region, clock } = setup({ hardTimeout: 0.1 })
    await region.getOrCreate('k', () => 'old')
    clock.advance(11_000)
    const hung = region.getOrCreate('k', () => new Promise<string>(() => {}))
    expect(await region.getOrCreate('k', () => 'unused')).toBe('old')
    await expect(hung).rejects.toBeInstanceOf(CreatorTimeoutError)
    expect(await region.getOrCreate('k', () => 'fresh')).toBe('fresh')
  })
})

describe('eager refresh', () => {
  it('a hit past the fraction returns the value and starts exactly one background regeneration', async () => {
    const { region, clock, named } = setup({ eagerRefresh: 0.5 })
    await region.getOrCreate('k', () => 'v1')
    clock.advance(6_000) // 60% of 10 s
    const gate = deferred()
    let runs = 0
    const refresh = async (context: CreatorContext<string>) => {
      runs++
      expect(context.staleValue).toBe('v1')
      await gate.promise
      return 'v2'
    }
    const answers = await Promise.all(Array.from({ length: 10 }, () => region.getOrCreate('k', refresh)))
    expect(answers).toEqual(Array(10).fill('v1'))
    expect(named('hit')).toHaveLength(10)
    expect(runs).toBe(1)
    gate.resolve()
    await expect.poll(() => region.get('k')).toBe('v2')
    expect(runs).toBe(1)
  })

  it('does not refresh before the fraction', async () => {
    const { region, clock } = setup({ eagerRefresh: 0.9 })
    await region.getOrCreate('k', () => 'v1')
    clock.advance(5_000)
    let runs = 0
    expect(await region.getOrCreate('k', () => (runs++, 'v2'))).toBe('v1')
    await sleep(10)
    expect(runs).toBe(0)
  })

  it('reports a failing refresh as a regenerate error and keeps serving the value', async () => {
    const { region, clock, named } = setup({ eagerRefresh: 0.5 })
    await region.getOrCreate('k', () => 'v1')
    clock.advance(6_000)
    expect(await region.getOrCreate('k', () => Promise.reject(new Error('refresh failed')))).toBe('v1')
    await expect.poll(() => named('regenerate').map((e) => e.outcome)).toEqual(['success', 'error'])
    expect(await region.get('k')).toBe('v1')
  })
})

describe('expiration jitter', () => {
  it('spreads expiry uniformly over [0, jitter] for every stored value, set() included', async () => {
    const { region, clock } = setup({ expirationJitter: 10 })
    for (let i = 0; i < 200; i++) await region.getOrCreate(`g${i}`, () => i)
    for (let i = 0; i < 200; i++) await region.set(`s${i}`, i)
    // At 10 s every value would have expired without jitter; with up to 10 s of jitter about half survive at 15 s.
    clock.advance(10_000)
    const at10 = await region.getMulti([...Array(200).keys()].flatMap((i) => [`g${i}`, `s${i}`]))
    expect(at10.filter((v) => v !== NO_VALUE).length).toBeGreaterThan(380)
    clock.advance(5_000)
    const at15 = await region.getMulti([...Array(200).keys()].flatMap((i) => [`g${i}`, `s${i}`]))
    const alive = at15.filter((v) => v !== NO_VALUE).length
    expect(alive).toBeGreaterThan(120)
    expect(alive).toBeLessThan(280)
    clock.advance(5_001)
    const at20 = await region.getMulti([...Array(200).keys()].flatMap((i) => [`g${i}`, `s${i}`]))
    expect(at20.every((v) => v === NO_VALUE)).toBe(true)
  })
})

describe('the creator context', () => {
  it('passes the key as given, a signal and the stale value (NO_VALUE when there is none)', async () => {
    const { region, clock } = setup()
    const seen: Array<CreatorContext<string>> = []
    await region.getOrCreate<string>('user:1', (context) => (seen.push(context), 'a'))
    clock.advance(11_000)
    await region.getOrCreate<string>('user:1', (context) => (seen.push(context), 'b'))
    expect(seen.map((c) => [c.key, c.staleValue, c.signal.aborted])).toEqual([
      ['user:1', NO_VALUE, false],
      ['user:1', 'a', false],
    ])
  })

  it('leaves creators that take no argument unaffected, decorators included', async () => {
    const { region } = setup()
    const load = region.cacheOnArguments(async function load(id: number) {
      return id * 2
    })
    expect(await load(21)).toBe(42)
  })
})

describe('options are checked where they are written', () => {
  it('rejects invalid resilience options on configure() and on a call, naming what is valid', async () => {
    const bad: Array<[Record<string, unknown>, RegExp]> = [
      [{ failSafe: true }, /failSafe must be \{ maxStaleAge, throttle\? \} or false/],
      [{ failSafe: {} }, /failSafe needs maxStaleAge/],
      [
        { failSafe: { maxStaleAge: 60, trottle: 1 } },
        /unknown option "trottle"; valid options are maxStaleAge, throttle/,
      ],
      [{ softTimeout: 0 }, /softTimeout must be greater than zero/],
      [{ hardTimeout: 'soon' }, /hardTimeout must be a non-negative number/],
      [{ softTimeout: 2, hardTimeout: 1 }, /softTimeout \(2s\) must be shorter than hardTimeout \(1s\)/],
      [{ eagerRefresh: 1 }, /eagerRefresh must be a fraction between 0 and 1/],
      [{ eagerRefresh: 0 }, /eagerRefresh must be a fraction between 0 and 1/],
      [{ expirationJitter: -1 }, /expirationJitter must be a non-negative number/],
    ]
    for (const [options, message] of bad) {
      expect(() =>
        createRegion({ registry: new RegionRegistry() }).configure('memory', { expirationTime: 5, ...options }),
      ).toThrow(message)
      const { region } = setup()
      await expect(region.getOrCreate('k', () => 1, options as never)).rejects.toThrow(ValidationError)
    }
  })

  it('needs an expiration time for eager refresh', async () => {
    expect(() => createRegion({ registry: new RegionRegistry() }).configure('memory', { eagerRefresh: 0.8 })).toThrow(
      /eagerRefresh .* needs an expirationTime/,
    )
    const region = createRegion({ registry: new RegionRegistry() }).configure('memory')
    await expect(region.getOrCreate('k', () => 1, { eagerRefresh: 0.8 })).rejects.toThrow(/needs an expirationTime/)
    expect(await region.getOrCreate('k', () => 1, { eagerRefresh: 0.8, expirationTime: 5 })).toBe(1)
  })

  it('rejects unknown options everywhere instead of ignoring them', async () => {
    const registry = new RegionRegistry()
    expect(() => createRegion({ registry, expirationTime: 5 } as never)).toThrow(
      /createRegion\(\): unknown option "expirationTime"; valid options are name, keyGenerator/,
    )
    expect(() => createRegion({ registry, telemetry: { recordkeys: false } } as never)).toThrow(
      /unknown option "recordkeys"/,
    )
    expect(() => createRegion({ registry }).configure('memory', { expiration_time: 5 } as never)).toThrow(
      /configure\(\): unknown option "expiration_time"; valid options are expirationTime, arguments, wrap/,
    )
    const region = createRegion({ registry }).configure('memory', { expirationTime: 5 })
    await expect(region.getOrCreate('k', () => 1, { ttl: 5 } as never)).rejects.toThrow(
      /getOrCreate\(\): unknown option "ttl"; valid options are expirationTime, shouldCache, tags, forceRefresh, failSafe/,
    )
    await expect(region.get('k', { ignoreExpiry: true } as never)).rejects.toThrow(/unknown option "ignoreExpiry"/)
    await expect(region.set('k', 1, { ttl: 1 } as never)).rejects.toThrow(/set\(\): unknown option "ttl"/)
    await expect(region.invalidate({ soft: true } as never)).rejects.toThrow(
      /unknown option "soft"; valid options are hard/,
    )
    expect(() => region.cacheOnArguments(function f() {}, { ttl: 1 } as never)).toThrow(
      /cacheOnArguments\(\): unknown option "ttl"/,
    )
  })
})

describe('section 7 telemetry', () => {
  it('counts fail-safe answers and timeouts in Prometheus, without key labels', async () => {
    const metrics = new Registry()
    let now = Date.now()
    const region = createRegion({ name: 'm', registry: new RegionRegistry({ metrics }), clock: () => now }).configure(
      'memory',
      { expirationTime: 1, failSafe: { maxStaleAge: 60 }, softTimeout: 0.02, hardTimeout: 0.08 },
    )
    await region.getOrCreate('a', () => 1)
    now += 2000
    await region.getOrCreate('a', () => new Promise<number>(() => {})) // soft, then hard in the background
    await sleep(120)
    now += 20_000
    await region.getOrCreate('a', () => Promise.reject(new Error('x'))) // fail-safe
    const text = await metrics.metrics()
    expect(text).toContain('corral_fail_safe_total{region="m"} 1')
    expect(text).toContain('corral_creator_timeouts_total{region="m",kind="soft"} 1')
    expect(text).toContain('corral_creator_timeouts_total{region="m",kind="hard"} 1')
    expect(text).not.toContain('key=')
  })
})

describe('getOrCreateResult: how the value was obtained, in the same call', () => {
  it('answers miss (created), hit (l1 on memory), stale, and failSafe', async () => {
    const { region, clock } = setup({ failSafe: { maxStaleAge: '1h' } })
    expect(await region.getOrCreateResult('k', () => 'v1')).toEqual({
      value: 'v1',
      result: 'miss',
      tier: undefined,
      created: true,
    })
    expect(await region.getOrCreateResult('k', () => 'unused')).toEqual({
      value: 'v1',
      result: 'hit',
      tier: 'l1',
      created: false,
    })
    clock.advance(11_000)
    const gate = deferred()
    const leader = region.getOrCreateResult('k', async () => (await gate.promise, 'v2'))
    expect(await region.getOrCreateResult('k', () => 'unused')).toMatchObject({ value: 'v1', result: 'stale' })
    gate.resolve()
    expect(await leader).toMatchObject({ value: 'v2', result: 'miss', created: true })
    clock.advance(11_000)
    expect(await region.getOrCreateResult('k', () => Promise.reject(new Error('down')))).toMatchObject({
      value: 'v2',
      result: 'failSafe',
      created: false,
    })
  })

  it('answers miss for a caller that waited for another caller of its process', async () => {
    const { region } = setup()
    const gate = deferred()
    const leader = region.getOrCreateResult('k', async () => (await gate.promise, 'v'))
    const waiter = region.getOrCreateResult('k', () => 'unused')
    gate.resolve()
    expect(await leader).toMatchObject({ result: 'miss', created: true })
    expect(await waiter).toMatchObject({ value: 'v', result: 'miss', created: false })
  })
})

describe('forceRefresh', () => {
  it('regenerates a fresh value, once for callers forcing together, and passes the old value as staleValue', async () => {
    const { region } = setup()
    await region.getOrCreate('k', () => 'v1')
    const gate = deferred()
    let runs = 0
    const seen: unknown[] = []
    const refresh = async (context: CreatorContext<string>) => {
      runs++
      seen.push(context.staleValue)
      await gate.promise
      return 'v2'
    }
    const forced = Array.from({ length: 5 }, () => region.getOrCreate('k', refresh, { forceRefresh: true }))
    // A caller that does not force still gets the fresh value at once.
    expect(await region.getOrCreate('k', () => 'unused')).toBe('v1')
    gate.resolve()
    expect(await Promise.all(forced)).toEqual(Array(5).fill('v2'))
    expect(runs).toBe(1)
    expect(seen).toEqual(['v1'])
    expect(await region.get('k')).toBe('v2')
  })

  it('is checked like every option', async () => {
    const { region } = setup()
    await expect(region.getOrCreate('k', () => 1, { forceRefresh: 'yes' as never })).rejects.toThrow(
      /forceRefresh must be a boolean/,
    )
  })
})
