/**
 * The circuit breaker: its options, its state machine (with an injected clock), and what callers and operators see
 * on a real redis-server that is killed, frozen and restarted under a region.
 */
import { randomUUID } from 'node:crypto'
import { Registry } from 'prom-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startRedis, type RedisServer } from '../../../test-support/servers.js'
import { RedisBackend } from './backends/redis/index.js'
import { CircuitBreaker, CircuitOpenError, DEFAULT_BREAKER, type CircuitState } from './circuit-breaker.js'
import { BackendError, NO_VALUE, RegionRegistry, ValidationError, type RegionEventMap } from './index.js'
import { eventually } from './testing/conformance.js'

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

describe('circuitBreaker option', () => {
  const region = () => new RegionRegistry().createRegion()

  it('is validated at configure time, naming what is valid', () => {
    const configure = (circuitBreaker: unknown) => () => region().configure('memory', { circuitBreaker } as never)
    expect(configure({ failures: 0 })).toThrow(ValidationError)
    expect(configure({ failures: 2.5 })).toThrow(/failures must be a whole number of at least 1/)
    expect(configure({ coolDown: 'soon' })).toThrow(/circuitBreaker.coolDown/)
    expect(configure({ window: 0 })).toThrow(/circuitBreaker.window must be greater than zero/)
    expect(configure({ cooldown: '1s' })).toThrow(
      /unknown option "cooldown"; valid options are failures, window, coolDown/,
    )
    expect(configure(true)).toThrow(/circuitBreaker must be \{ failures\?, window\?, coolDown\? \} or false/)
    expect(() => region().configure('memory', { circuitBreker: false } as never)).toThrow(/circuitBreaker/)
    // valid forms
    region().configure('memory', { circuitBreaker: false })
    region().configure('memory', { circuitBreaker: { failures: 3, window: '30s', coolDown: '250ms' } })
  })

  it('leaves in-process backends alone: no breaker, the synchronous hit path kept', () => {
    const memory = region().configure('memory', {})
    expect(memory.statsSnapshot().circuit).toBeNull()
    expect(memory.backend.getSync).toBeTypeOf('function')
  })
})

describe('the breaker state machine', () => {
  /** A breaker with an injected clock, and a probe the test answers. */
  const breaker = (policy = { failures: 3, windowMs: 1000, coolDownMs: 500 }) => {
    let now = 0
    const states: CircuitState[] = []
    const probes: Array<{ resolve: () => void; reject: () => void }> = []
    const probe = () =>
      new Promise<void>((resolve, reject) => probes.push({ resolve, reject: () => reject(new Error('down')) }))
    const b = new CircuitBreaker(
      policy,
      (state) => states.push(state),
      probe,
      () => now,
    )
    const flush = () => new Promise<void>((resolve) => setImmediate(resolve))
    return { b, states, probes, flush, advance: (ms: number) => (now += ms) }
  }
  const fail = (b: CircuitBreaker) => {
    expect(b.admit()).toBe('pass')
    b.failed()
  }

  it('opens after `failures` failures in a row, skips for the cool-down, then probes with a call of its own', async () => {
    const { b, states, probes, flush, advance } = breaker()
    fail(b)
    fail(b)
    expect(b.state).toBe('closed')
    fail(b)
    expect(states).toEqual(['open'])
    advance(499)
    expect(b.admit()).toBe('skip')
    expect(probes).toHaveLength(0)
    advance(1)
    // The first call after the cool-down starts the probe and is skipped, as are the calls while it runs.
    expect(b.admit()).toBe('skip')
    expect(b.state).toBe('half-open')
    expect(probes).toHaveLength(1)
    expect(b.admit()).toBe('skip')
    expect(probes).toHaveLength(1) // one probe at a time
    probes[0]!.resolve()
    await flush()
    expect(states).toEqual(['open', 'half-open', 'closed'])
    expect(b.admit()).toBe('pass')
  })

  it('a failed probe opens it again for another cool-down; a probe that never answers is replaced', async () => {
    const { b, states, probes, flush, advance } = breaker()
    for (let i = 0; i < 3; i++) fail(b)
    advance(500)
    b.admit()
    probes[0]!.reject()
    await flush()
    expect(b.state).toBe('open')
    advance(499)
    expect(b.admit()).toBe('skip')
    expect(probes).toHaveLength(1)
    advance(1)
    b.admit()
    expect(probes).toHaveLength(2)
    advance(500) // the second probe hangs: after a cool-down another one starts
    b.admit()
    expect(probes).toHaveLength(3)
    probes[1]!.resolve() // the lost one answers late: it decides nothing
    await flush()
    expect(b.state).toBe('half-open')
    probes[2]!.resolve()
    await flush()
    expect(states).toEqual(['open', 'half-open', 'open', 'half-open', 'closed'])
  })

  it('counts only failures in a row within the window', () => {
    const { b, advance } = breaker()
    fail(b)
    fail(b)
    b.succeeded() // a success breaks the run
    fail(b)
    fail(b)
    expect(b.state).toBe('closed')
    advance(1001) // those two are too old now
    fail(b)
    fail(b)
    expect(b.state).toBe('closed')
    fail(b)
    expect(b.state).toBe('open')
  })

  it('ignores stragglers: failures of calls that went out before it opened do not extend the cool-down', () => {
    const { b, states, probes, advance } = breaker()
    for (let i = 0; i < 4; i++) expect(b.admit()).toBe('pass')
    for (let i = 0; i < 4; i++) b.failed()
    expect(states).toEqual(['open'])
    advance(500)
    b.admit()
    expect(probes).toHaveLength(1)
  })

  it('defaults to 5 failures within 10 s and a 1 s cool-down', () => {
    expect(DEFAULT_BREAKER).toEqual({ failures: 5, windowMs: 10_000, coolDownMs: 1000 })
  })
})

describe('the breaker on a real Redis', () => {
  let server: RedisServer

  beforeAll(async () => {
    server = await startRedis()
  })

  afterAll(async () => {
    await server?.stop()
  })

  /** A region on the server with fast command timeouts, its events, and its metrics registry. */
  const redisRegion = (circuitBreaker?: unknown) => {
    const metrics = new Registry()
    const registry = new RegionRegistry({ metrics })
    const region = registry.createRegion({ name: `breaker-${randomUUID().slice(0, 8)}` })
    region.configure('redis', {
      expirationTime: 60,
      arguments: { url: server.url, keyPrefix: `${region.name}:`, commandTimeout: 0.2 },
      ...(circuitBreaker === undefined ? {} : { circuitBreaker: circuitBreaker as never }),
    })
    const circuit: Array<RegionEventMap['circuit']> = []
    const backendErrors: Array<RegionEventMap['backendError']> = []
    region.on('circuit', (event) => circuit.push(event))
    region.on('backendError', (event) => backendErrors.push(event))
    const metric = async (name: string) =>
      (await metrics.getMetricsAsJSON()).find((m) => m.name === name)?.values.map((v) => [v.labels, v.value])
    return { region, circuit, backendErrors, metric }
  }

  it('is closed on a healthy server, and region.backend is still the configured backend', async () => {
    const { region, metric } = redisRegion()
    try {
      expect(region.backend).toBeInstanceOf(RedisBackend)
      expect(await region.getOrCreate('k', () => 'v')).toBe('v')
      expect(await region.get('k')).toBe('v')
      expect(region.statsSnapshot().circuit).toEqual({ closed: 1, halfOpen: 0, open: 0 })
      expect(await metric('corral_circuit_state')).toEqual([[{ region: region.name, backend: 'redis' }, 0]])
      expect(await metric('corral_circuit_opens_total')).toEqual([[{ region: region.name, backend: 'redis' }, 0]])
    } finally {
      await region.close()
    }
  })

  it('a frozen server: after the first timeouts calls stop paying one, then one probe closes it once the server thaws', async () => {
    const guarded = redisRegion({ failures: 3, coolDown: '400ms' })
    const unguarded = redisRegion(false)
    const { region, circuit, backendErrors, metric } = guarded
    try {
      expect(unguarded.region.statsSnapshot().circuit).toBeNull()
      expect(await region.getOrCreate('before', () => 'B')).toBe('B')
      expect(await unguarded.region.getOrCreate('before', () => 'B')).toBe('B')
      await server.pause()
      let open: number
      let without: number
      try {
        // Without a breaker every call pays the command timeouts (read, lock, write): ~0.6 s each.
        let started = performance.now()
        for (let i = 0; i < 5; i++) expect(await unguarded.region.getOrCreate(`u${i}`, () => i)).toBe(i)
        without = performance.now() - started
        // With one: the first calls pay until 3 failures open it, then calls answer from the creator at once.
        started = performance.now()
        for (let i = 0; i < 10; i++) expect(await region.getOrCreate(`g${i}`, () => i)).toBe(i)
        const guardedMs = performance.now() - started
        expect(circuit.map((e) => e.state)).toEqual(['open'])
        expect(circuit[0]).toEqual({ region: region.name, backend: 'redis', state: 'open' })
        const opened = performance.now()
        for (let i = 0; i < 20; i++) expect(await region.getOrCreate(`o${i}`, () => i)).toBe(i)
        open = performance.now() - opened
        console.log(
          `[corral-measure] frozen redis, getOrCreate: 5 without breaker ms=${without.toFixed(0)}, 10 with breaker ms=${guardedMs.toFixed(0)}, 20 more while open ms=${open.toFixed(1)}`,
        )
        expect(open).toBeLessThan(100) // no command timeout (200 ms) paid by any of them
        expect(without).toBeGreaterThan(5 * 200)
        // Open: reads miss silently, skipped writes are reported, deletes fail with a BackendError.
        const skipped = backendErrors.filter((e) => e.error instanceof CircuitOpenError)
        expect(skipped.length).toBeGreaterThan(0)
        expect(new Set(skipped.map((e) => e.operation))).toEqual(new Set(['lock', 'set']))
        const deleteError = await region.delete('before').catch((e: unknown) => e)
        expect(deleteError).toBeInstanceOf(BackendError)
        expect(deleteError).toBeInstanceOf(CircuitOpenError)
        expect((deleteError as BackendError).code).toBe('E_BACKEND')
        expect(await region.get('before')).toBe(NO_VALUE)
        expect(region.statsSnapshot()).toMatchObject({ circuit: { closed: 0, halfOpen: 0, open: 1 }, circuitOpens: 1 })
        expect(await metric('corral_circuit_state')).toEqual([[{ region: region.name, backend: 'redis' }, 2]])
        expect(await metric('corral_circuit_opens_total')).toEqual([[{ region: region.name, backend: 'redis' }, 1]])
        // After the cool-down the next call starts a probe (and is answered at once, without the server); the
        // probe meets the still frozen server, fails, and the circuit opens again.
        await sleep(450)
        const during = performance.now()
        expect(await region.getOrCreate('probe', () => 'P')).toBe('P')
        expect(performance.now() - during).toBeLessThan(100)
        await eventually(() => circuit.length === 3, 2000, 10)
        expect(circuit.map((e) => e.state)).toEqual(['open', 'half-open', 'open'])
      } finally {
        await server.resume()
      }
      // Thawed: the next probe succeeds and the circuit closes; values are read and stored again.
      await sleep(450)
      await eventually(async () => (await region.get('before')) === 'B', 3000, 20)
      expect(circuit.map((e) => e.state)).toEqual(['open', 'half-open', 'open', 'half-open', 'closed'])
      expect(await region.getOrCreate('after', () => 'A')).toBe('A')
      expect(await region.getOrCreate('after', () => 'again')).toBe('A')
      expect(await metric('corral_circuit_state')).toEqual([[{ region: region.name, backend: 'redis' }, 0]])
      expect(region.statsSnapshot().circuit).toEqual({ closed: 1, halfOpen: 0, open: 0 })
    } finally {
      await region.close()
      await unguarded.region.close()
    }
  })

  it('a killed server: it opens, every call answers from its creator, and it closes by itself after a restart', async () => {
    const { region, circuit } = redisRegion({ failures: 3, coolDown: '300ms' })
    try {
      expect(await region.getOrCreate('k', () => 'v1')).toBe('v1')
      await server.kill()
      for (let i = 0; i < 10; i++) expect(await region.getOrCreate(`k${i}`, () => i)).toBe(i)
      expect(circuit.map((e) => e.state)).toEqual(['open'])
      // Invalidations do not go through the breaker: they fail with BackendError, as without it.
      await expect(region.invalidate()).rejects.toMatchObject({ code: 'E_BACKEND' })
      await server.restart()
      // Hits resume once a probe finds the server back (its data is gone: the first call regenerates).
      await eventually(
        async () => {
          await region.getOrCreate('k', () => 'v2')
          return (await region.get('k')) === 'v2'
        },
        5000,
        50,
      )
      expect(circuit.at(-1)?.state).toBe('closed')
      expect(region.statsSnapshot().circuitOpens).toBeGreaterThanOrEqual(1)
    } finally {
      await region.close()
    }
  })

  it('with an L1 in front, it guards the calls that go on to Redis', async () => {
    const registry = new RegionRegistry()
    const region = registry.createRegion({ name: `breaker-l1-${randomUUID().slice(0, 8)}` }).configure('redis', {
      expirationTime: 60,
      arguments: { url: server.url, keyPrefix: 'l1:', commandTimeout: 0.2 },
      l1: true,
      circuitBreaker: { failures: 2, coolDown: '300ms' },
    })
    const states: string[] = []
    region.on('circuit', ({ state }) => states.push(state))
    try {
      expect(await region.getOrCreate('k', () => 'v1')).toBe('v1')
      expect(region.statsSnapshot().circuit).toEqual({ closed: 1, halfOpen: 0, open: 0 })
      await server.kill()
      for (let i = 0; i < 5; i++) expect(await region.getOrCreate(`down${i}`, () => i)).toBe(i)
      expect(states).toEqual(['open'])
      await server.restart()
      await eventually(
        async () => {
          await region.getOrCreate('after', () => 'stored')
          return states.at(-1) === 'closed' && (await region.get('after')) === 'stored'
        },
        5000,
        50,
      )
    } finally {
      await region.close()
    }
  })
})
