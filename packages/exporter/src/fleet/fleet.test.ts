/**
 * Fleet telemetry with real processes on a real Redis: three forked processes, each with its own exporter
 * publishing to one fleet; what any one of them serves on /api/fleet is checked against what the test made happen.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startRedis, type RedisServer } from '../../../../test-support/servers.js'
import type { FleetHotKeysJson, FleetJson, FleetStampedesJson } from '../api-types.js'
import { FleetWorker } from '../test-support/fleet-workers.js'

const INTERVAL_S = 0.4
let redis: RedisServer
let workers: FleetWorker[] = []

async function getJson<T>(url: string): Promise<T> {
  const response = await fetch(url)
  if (!response.ok) throw new Error(`${url}: ${response.status} ${await response.text()}`)
  return (await response.json()) as T
}

/** Polls `read` until `check` holds (default 10 s); returns the last value. */
async function until<T>(read: () => Promise<T>, check: (value: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let last = await read()
  while (!check(last)) {
    if (Date.now() > deadline)
      throw new Error(`condition not met in ${timeoutMs} ms; last: ${JSON.stringify(last).slice(0, 2000)}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
    last = await read()
  }
  return last
}

const fleetOf = (worker: FleetWorker) => () => getJson<FleetJson>(`${worker.url}/api/fleet`)
const catalogOf = (fleet: FleetJson) => fleet.regions.find((r) => r.name === 'catalog')

beforeAll(async () => {
  redis = await startRedis()
  const env = { REDIS_URL: redis.url, FLEET_NAME: `t-${randomUUID().slice(0, 8)}`, FLEET_INTERVAL: INTERVAL_S }
  workers = await Promise.all([FleetWorker.start(env), FleetWorker.start(env), FleetWorker.start(env)])
})

afterAll(async () => {
  await Promise.all(workers.map((w) => w.stop()))
  await redis?.stop()
})

describe('fleet telemetry over a shared Redis', () => {
  it('lists every live process and sums their counters', { timeout: 30_000 }, async () => {
    const plans: Array<Array<[string, number]>> = [
      [
        ['a', 5],
        ['b', 3],
      ],
      [['e', 7]],
      [
        ['c', 11],
        ['d', 2],
      ],
    ]
    await Promise.all(workers.map((w, i) => w.call('traffic', { gets: plans[i] })))
    const total = plans.flat().reduce((sum, [, n]) => sum + n, 0)
    const fleet = await until(
      fleetOf(workers[1]!),
      (f) => f.instances.length === 3 && catalogOf(f)?.stats.gets === total,
    )

    expect(fleet.instances.map((i) => i.pid).sort()).toEqual(workers.map((w) => w.pid).sort())
    for (const instance of fleet.instances) {
      expect(instance.hostname).not.toBe('')
      expect(instance.startedAt).toBeLessThanOrEqual(instance.lastSeen)
      expect(instance.lastSeen).toBeGreaterThan(Date.now() - 5000)
      expect(instance.interval).toBe(INTERVAL_S)
    }
    const catalog = catalogOf(fleet)!.stats
    // 5 keys, each asked by one process: each a miss once (the processes share the Redis backend)
    expect(catalog.misses).toBe(5)
    expect(catalog.hits).toBe(total - 5)
    expect(catalog.hitRatio).toBeCloseTo((total - 5) / total, 10)
    const perInstance = fleet.instances.map((i) => i.regions.find((r) => r.name === 'catalog')!.stats.gets)
    expect(perInstance.sort((x, y) => x - y)).toEqual([7, 8, 13])
    expect(fleet.self).toMatch(new RegExp(`:${workers[1]!.pid}:`))
  })

  it(
    'finds the true top keys of traffic split across processes, with their error bound',
    { timeout: 30_000 },
    async () => {
      // Each process has its own big key and 25 keys of its own that fill its top-20 list; the keys spread over all
      // three are the fleet's hottest although none is the hottest of any one process.
      const own = (p: number) => Array.from({ length: 25 }, (_, i): [string, number] => [`hk:p${p}-filler-${i}`, 2])
      const plans: Array<Array<[string, number]>> = [
        [['hk:p0-big', 30], ['hk:spread-1', 14], ['hk:spread-2', 11], ['hk:spread-3', 8], ...own(0)],
        [['hk:p1-big', 26], ['hk:spread-1', 14], ['hk:spread-2', 11], ['hk:spread-3', 8], ...own(1)],
        [['hk:p2-big', 22], ['hk:spread-1', 14], ['hk:spread-2', 11], ['hk:spread-3', 9], ...own(2)],
      ]
      await Promise.all(workers.map((w, i) => w.call('traffic', { gets: plans[i] })))
      const truth = new Map<string, number>()
      for (const [key, n] of plans.flat()) truth.set(key, (truth.get(key) ?? 0) + n)
      // other tests' keys live in this region too: only the ones made here are compared
      const trueTop = [...truth].sort((a, b) => b[1] - a[1]).slice(0, 6)
      expect(trueTop.map(([key]) => key)).toEqual([
        'hk:spread-1',
        'hk:spread-2',
        'hk:p0-big',
        'hk:p1-big',
        'hk:spread-3',
        'hk:p2-big',
      ])

      const hot = await until(
        () => getJson<FleetHotKeysJson>(`${workers[0]!.url}/api/fleet/regions/catalog/hot-keys?limit=10`),
        (h) => h.instances === 3 && h.keys.find((k) => k.key === 'hk:spread-1')?.count === 42,
      )
      const mine = hot.keys.filter((k) => truth.has(k.key)).slice(0, 6)
      expect(mine.map((k) => [k.key, k.count])).toEqual(trueTop)
      for (const key of hot.keys) {
        const real = truth.get(key.key)
        if (real === undefined) continue
        expect(key.count).toBeLessThanOrEqual(real)
        expect(real).toBeLessThanOrEqual(key.count + key.error)
      }
      // listed by every process: exact; listed by one: up to the other two lists' smallest counts
      expect(hot.keys.find((k) => k.key === 'hk:spread-1')).toMatchObject({ instances: 3, error: 0 })
      expect(hot.keys.find((k) => k.key === 'hk:p0-big')).toMatchObject({ instances: 1, count: 30 })
      expect(hot.keys.find((k) => k.key === 'hk:p0-big')!.error).toBeGreaterThan(0)
    },
  )

  it(
    "shows a cross-process stampede once, with the creator and each process's waiting callers",
    { timeout: 30_000 },
    async () => {
      const results = await Promise.all(
        workers.map((w) =>
          w.call<{ runs: number; values: string[] }>('stampede', { key: 'stampede:1', callers: 10, creatorMs: 600 }),
        ),
      )
      expect(results.reduce((sum, r) => sum + r.runs, 0)).toBe(1)
      const creator = workers[results.findIndex((r) => r.runs === 1)]!
      expect(new Set(results.flatMap((r) => r.values))).toEqual(new Set([`made by ${creator.pid}`]))

      const { stampedes } = await until(
        () => getJson<FleetStampedesJson>(`${workers[2]!.url}/api/fleet/stampedes`),
        // while the creator runs, its process's snapshot shows its callers waiting, the creator not yet known
        (s) => s.stampedes.some((i) => i.key === 'stampede:1' && i.creator !== null && i.coalesced === 29),
      )
      const incidents = stampedes.filter((i) => i.key === 'stampede:1')
      expect(incidents).toHaveLength(1)
      const incident = incidents[0]!
      expect(incident.region).toBe('catalog')
      expect(incident.creator).toMatchObject({ pid: creator.pid, role: 'creator', coalesced: 9 })
      expect(incident.duration).toBeGreaterThan(0.55)
      const waiters = incident.processes.filter((p) => p.role === 'waiter')
      expect(waiters.map((p) => p.pid).sort()).toEqual(
        workers
          .filter((w) => w !== creator)
          .map((w) => w.pid)
          .sort(),
      )
      expect(waiters.map((p) => p.coalesced)).toEqual([10, 10])
    },
  )

  it(
    'finds the creator of a stampede even when no other caller of its own process waited',
    { timeout: 30_000 },
    async () => {
      const [creator, ...others] = workers as [FleetWorker, FleetWorker, FleetWorker]
      const leading = creator.call<{ runs: number }>('stampede', { key: 'stampede:lonely', callers: 1, creatorMs: 800 })
      // the others ask once the creator holds the lock (its process may be slow to get there on a loaded machine)
      await until(
        () => others[0].call<{ locked: boolean }>('locked', { key: 'stampede:lonely' }),
        (answer) => answer.locked,
      )
      const waiting = others.map((w) =>
        w.call<{ runs: number }>('stampede', { key: 'stampede:lonely', callers: 5, creatorMs: 800 }),
      )
      const results = await Promise.all([leading, ...waiting])
      expect(results.map((r) => r.runs)).toEqual([1, 0, 0])

      // the waiters publish their side; the creator's process reads it, recognises its regeneration, and publishes it
      const { stampedes } = await until(
        () => getJson<FleetStampedesJson>(`${others[0].url}/api/fleet/stampedes`),
        // each process's latest snapshot: the waiters' last callers, the creator's claim a publish later
        (s) => s.stampedes.some((i) => i.key === 'stampede:lonely' && i.creator !== null && i.coalesced === 10),
      )
      const incidents = stampedes.filter((i) => i.key === 'stampede:lonely')
      expect(incidents).toHaveLength(1)
      expect(incidents[0]!.creator).toMatchObject({ pid: creator.pid, coalesced: 0 })
      expect(incidents[0]!.processes.filter((p) => p.role === 'waiter').map((p) => p.coalesced)).toEqual([5, 5])
      expect(incidents[0]!.duration).toBeGreaterThan(0.75)
    },
  )

  it('drops a SIGKILLed process within three intervals and stops counting it', { timeout: 30_000 }, async () => {
    // settled: every process's latest counters published (two reads in a row agree)
    let previous = ''
    const before = await until(fleetOf(workers[0]!), (f) => {
      const gets = JSON.stringify(f.instances.map((i) => [i.id, i.regions[0]!.stats.gets]).sort())
      const settled = f.instances.length === 3 && gets === previous
      previous = gets
      return settled
    })
    const victim = workers[2]!
    const victimGets = before.instances.find((i) => i.pid === victim.pid)!.regions[0]!.stats.gets
    const lastSeen = before.instances.find((i) => i.pid === victim.pid)!.lastSeen
    await victim.kill()
    const killedAt = Date.now()
    const after = await until(fleetOf(workers[0]!), (f) => f.instances.length === 2)
    const gone = Date.now()
    expect(after.instances.map((i) => i.pid)).not.toContain(victim.pid)
    // it leaves three intervals after its last snapshot (plus this poll's 50 ms and scheduling on a loaded machine)
    expect(gone - lastSeen).toBeLessThanOrEqual(3 * INTERVAL_S * 1000 + 1500)
    expect(gone - killedAt).toBeGreaterThan(0)
    const sumBefore = catalogOf(before)!.stats.gets
    expect(catalogOf(after)!.stats.gets).toBe(sumBefore - victimGets)
    expect(workers[0]!.unhandled).toEqual([])
    expect(workers[1]!.unhandled).toEqual([])
  })
})
