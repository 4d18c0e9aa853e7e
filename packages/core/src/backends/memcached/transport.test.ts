/**
 * Corral's deadline around memcached calls, against real memcached processes that are frozen (SIGSTOP), thawed
 * (SIGCONT), killed (SIGKILL) and restarted while other calls keep flowing. memjs alone fails each of these: its
 * timeout is a socket idle timer that the other calls keep resetting, and after a restart it can keep a request's
 * callback for ever.
 */
import { randomUUID } from 'node:crypto'
import memjs from 'memjs'
import { afterEach, describe, expect, it } from 'vitest'
import { startMemcached, type MemcachedServer } from '../../../../../test-support/servers.js'
import { CachedValue, NO_VALUE, jsonSerializer } from '../../cached-value.js'
import { BackendError } from '../../errors.js'
import { RegionRegistry } from '../../registry.js'
import { eventually } from '../../testing/conformance.js'
import { reportFigure } from '../../testing/measure.js'
import { MemcachedBackend } from './index.js'

/** Slack over a deadline for a loaded machine (2 cores shared by several test runs). */
const SLACK_MS = 700

const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function ownServer(): Promise<MemcachedServer> {
  const server = await startMemcached()
  cleanups.push(() => server.stop())
  return server
}

function attached(backend: MemcachedBackend): MemcachedBackend {
  backend.attach({ regionName: 'transport', expirationTime: 60, serializer: jsonSerializer, reportError: () => {} })
  cleanups.push(() => backend.close())
  return backend
}

/** Runs `call` and measures how long it took to settle, and how. */
async function timed<T>(call: () => Promise<T>): Promise<{ ms: number; value?: T; error?: unknown }> {
  const started = performance.now()
  try {
    const value = await call()
    return { ms: performance.now() - started, value }
  } catch (error) {
    return { ms: performance.now() - started, error }
  }
}

/** Calls `call` every `everyMs` until stopped; records how long each took and whether it failed. */
function traffic(call: () => Promise<unknown>, everyMs: number) {
  const results: Array<{ ms: number; failed: boolean; at: number }> = []
  const inFlight = new Set<Promise<void>>()
  const timer = setInterval(() => {
    const at = performance.now()
    const running = call().then(
      () => void results.push({ ms: performance.now() - at, failed: false, at }),
      () => void results.push({ ms: performance.now() - at, failed: true, at }),
    )
    inFlight.add(running)
    void running.finally(() => inFlight.delete(running))
  }, everyMs)
  return {
    results,
    /** Stops, and waits for the calls still running (they must all settle). */
    async stop() {
      clearInterval(timer)
      await Promise.all(inFlight)
    },
  }
}

const valueOf = (v: CachedValue | typeof NO_VALUE) => (v === NO_VALUE ? NO_VALUE : v.payload)

describe('memcached calls under a deadline of their own', () => {
  it('a call to a frozen server (SIGSTOP) fails at its timeout while other calls flow, and the next succeed once it thaws', async () => {
    const server = await ownServer()
    const backend = attached(new MemcachedBackend({ servers: server.servers, timeout: 0.3 }))
    await backend.set('k', CachedValue.create('v', Date.now()))

    await server.pause()
    const load = traffic(() => backend.get('other'), 20)
    const frozen = await timed(() => backend.get('k'))
    await new Promise((resolve) => setTimeout(resolve, 400))
    await load.stop()
    await server.resume()

    expect(frozen.error).toBeInstanceOf(BackendError)
    expect((frozen.error as Error).message).toMatch(/no answer within 300 ms/)
    expect(frozen.ms).toBeGreaterThanOrEqual(295)
    expect(frozen.ms).toBeLessThan(300 + SLACK_MS)
    // Every call of the traffic settled within the deadline too, none hung.
    expect(load.results.length).toBeGreaterThan(5)
    expect(Math.max(...load.results.map((r) => r.ms))).toBeLessThan(300 + SLACK_MS)
    reportFigure('memcached call to a frozen server, other calls flowing (ms; timeout 300)', {
      frozenCall: frozen.ms,
      slowestOther: Math.max(...load.results.map((r) => r.ms)),
    })

    // Thawed: the stuck connection was replaced, so the very next calls are answered.
    const after = await timed(() => backend.get('k'))
    expect(after.error).toBeUndefined()
    expect(valueOf(after.value!)).toBe('v')
    await backend.set('k2', CachedValue.create('w', Date.now()))
    expect(valueOf(await backend.get('k2'))).toBe('w')
  })

  it('a client you pass: its timeout is the deadline (or `timeout`), and its stuck connection is replaced in its server list', async () => {
    const server = await ownServer()
    const client = memjs.Client.create(server.servers, { timeout: 0.25, logger: { log: () => {} } })
    cleanups.push(() => client.close())
    const backend = attached(new MemcachedBackend({ client }))
    expect(backend.timeoutMs).toBe(250)
    expect(new MemcachedBackend({ client, timeout: '150ms' }).timeoutMs).toBe(150)
    await backend.set('k', CachedValue.create('v', Date.now()))
    const before = client.servers[0]

    await server.pause()
    const load = traffic(() => backend.get('other'), 20)
    const frozen = await timed(() => backend.get('k'))
    await load.stop()
    await server.resume()

    expect(frozen.error).toBeInstanceOf(BackendError)
    expect(frozen.ms).toBeLessThan(250 + SLACK_MS)
    expect(client.servers[0]).not.toBe(before)
    // Both Corral and your own memjs calls work on the replacement.
    expect(valueOf(await backend.get('k'))).toBe('v')
    expect((await client.get('k')).value?.toString()).toContain('"v"')
  })

  it('a hung server killed and restarted under load: every call settles within its timeouts, coalesced callers included, and calls succeed after the restart', async () => {
    const server = await ownServer()
    const unhandled: unknown[] = []
    const onUnhandled = (reason: unknown) => unhandled.push(reason)
    process.on('unhandledRejection', onUnhandled)
    cleanups.push(() => void process.off('unhandledRejection', onUnhandled))
    const region = new RegionRegistry()
      .createRegion({ name: `restart-${randomUUID().slice(0, 8)}` })
      .configure('memcached', {
        expirationTime: 60,
        arguments: { servers: server.servers, timeout: 0.3, lockTimeout: 2 },
      })
    region.on('backendError', () => {})
    cleanups.push(() => region.close())
    let runs = 0
    // Ten callers coalesce on one key at a time; each round uses a new key.
    let round = 0
    const coalesced = traffic(async () => {
      const key = `hot-${round++}`
      const values = await Promise.all(Array.from({ length: 10 }, () => region.getOrCreate(key, () => ++runs)))
      if (new Set(values).size !== 1) throw new Error(`coalesced callers got ${values.join(',')}`)
    }, 25)
    const reads = traffic(() => region.get('plain'), 10)

    await new Promise((resolve) => setTimeout(resolve, 300))
    // The server hangs with calls in flight, then dies under them (its connections closed), and comes back.
    await server.pause()
    await new Promise((resolve) => setTimeout(resolve, 150))
    await server.kill()
    await new Promise((resolve) => setTimeout(resolve, 300))
    await server.restart()
    const restartedAt = performance.now()
    // Recovered: values are stored and read again (the first calls may still meet the old connection).
    await eventually(
      async () => {
        await region.getOrCreate('after', () => 'stored')
        return (await region.get('after')) === 'stored'
      },
      5000,
      20,
    )
    const recoveredMs = performance.now() - restartedAt
    await new Promise((resolve) => setTimeout(resolve, 300))
    await Promise.all([coalesced.stop(), reads.stop()])

    const all = [...coalesced.results, ...reads.results]
    // Callers answered with a value (from the creator while the server was away), none hung: getOrCreate makes
    // up to three calls (read, lock, store), each bounded by the timeout.
    expect(coalesced.results.filter((r) => r.failed)).toEqual([])
    expect(Math.max(...all.map((r) => r.ms))).toBeLessThan(3 * 300 + SLACK_MS)
    expect(unhandled).toEqual([])
    // Once recovered, it stays so: the last calls are all answered by the server.
    expect(await region.getOrCreate('after', () => 'again')).toBe('stored')
    reportFigure('memcached SIGSTOP, SIGKILL + restart under load', {
      calls: all.length,
      slowestMs: Math.max(...all.map((r) => r.ms)),
      recoveredAfterRestartMs: recoveredMs,
    })
  })

  it('a lock attempt that a frozen server runs after it thaws is taken over (this process) or cleared (others), not waited for', async () => {
    const server = await ownServer()
    const options = { servers: server.servers, timeout: 0.2, lockTimeout: 30, keyPrefix: 'thaw:' }
    const [mine, other] = [attached(new MemcachedBackend(options)), attached(new MemcachedBackend(options))]

    await server.pause()
    // The ADD reaches the server but is answered only after the deadline: the caller gave up on it.
    await expect(mine.getMutex('k')!.acquire({ wait: false })).rejects.toThrow(BackendError)
    await expect(mine.getMutex('j')!.acquire({ wait: false })).rejects.toThrow(BackendError)
    await server.resume()

    // Another process does not wait 30 s for a lock nobody holds: the sweep deletes it.
    const otherWaited = await timed(() => other.getMutex('j')!.acquire({ wait: true }))
    expect(otherWaited.value?.acquired).toBe(true)
    expect(otherWaited.ms).toBeLessThan(1500)
    // This process takes its own abandoned lock over at once (unless the sweep cleared it first).
    const mineWaited = await timed(() => mine.getMutex('k')!.acquire({ wait: true }))
    expect(mineWaited.value?.acquired).toBe(true)
    expect(mineWaited.ms).toBeLessThan(1500)
  })
})
