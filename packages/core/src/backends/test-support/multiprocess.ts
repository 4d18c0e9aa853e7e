/**
 * The multi-process scenarios every distributed backend must pass, registered as Vitest tests: N child processes
 * (default 4) × M concurrent callers (default 250) on one key, cold and expired; a lock holder killed mid-creation;
 * invalidation in one process seen by the others.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CachedValue, jsonSerializer } from '../../cached-value.js'
import { createBackend } from '../plugins.js'
import { percentile, startWorkers, stampede, Worker, type CreatedValue } from './workers.js'

export interface MultiProcessOptions {
  backend: 'redis' | 'memcached'
  /** The backend's arguments (called once the servers run). */
  arguments: () => Record<string, unknown>
  /** How long an invalidation may take to reach another process (the documented delay, plus scheduling slack). */
  invalidationBudgetMs: number
  processes?: number
  callers?: number
}

/** Prints a measured figure so that it shows in the test output (grep for [corral-measure]). */
export function reportFigure(label: string, values: Record<string, number | string>): void {
  const text = Object.entries(values)
    .map(([name, value]) => `${name}=${typeof value === 'number' ? value.toFixed(2) : value}`)
    .join(' ')
  console.log(`[corral-measure] ${label}: ${text}`)
}

export function describeMultiProcess(name: string, options: MultiProcessOptions): void {
  const processes = options.processes ?? 4
  const callers = options.callers ?? 250
  const regionName = `mp-${randomUUID().slice(0, 8)}`
  let workers: Worker[] = []

  const configure = (targets: readonly Worker[], region: string, extra: Record<string, unknown> = {}) =>
    Promise.all(
      targets.map((w) =>
        w.call('configure', {
          region,
          backend: options.backend,
          arguments: { ...options.arguments(), ...extra },
          expirationTime: 30,
        }),
      ),
    )

  /** Stores `payload` under `key` created at `ct`, as a region of this backend would. */
  const seed = async (key: string, payload: unknown, ct: number) => {
    const backend = createBackend(options.backend, options.arguments())
    backend.attach?.({ regionName, expirationTime: 30, serializer: jsonSerializer, reportError: () => {} })
    try {
      await backend.set(key, CachedValue.create(payload, ct))
    } finally {
      await backend.close?.()
    }
  }

  const expectHealthy = async (targets: readonly Worker[]) => {
    for (const w of targets) expect(w.unhandled, `worker ${w.pid} unhandled errors`).toEqual([])
  }

  describe(`${name}: ${processes} processes × ${callers} callers`, () => {
    beforeAll(async () => {
      workers = await startWorkers(processes)
      await configure(workers, regionName)
    })

    afterAll(async () => {
      await Promise.all(workers.map((w) => w.stop()))
    })

    it('run the creator exactly once on a cold key; every caller gets its value', async () => {
      const key = `cold:${randomUUID()}`
      const { runs, all } = await stampede(workers, { region: regionName, key, callers, creatorMs: 200, label: 'cold' })
      expect(all.filter((r) => r.error)).toEqual([])
      expect(runs).toBe(1)
      expect(all).toHaveLength(processes * callers)
      const values = all.map((r) => r.value as CreatedValue)
      const made = values[0]!
      expect(values.every((v) => v.pid === made.pid && v.run === made.run && v.label === 'cold')).toBe(true)
      // How long callers in the other processes took to see the value once the creator finished.
      const crossProcess = all.filter((r) => r.pid !== made.pid).map((r) => r.resolvedAt - made.madeAt)
      reportFigure(`${name} cold stampede: waiter latency after the creator finished (ms, other processes)`, {
        p50: percentile(crossProcess, 50),
        p99: percentile(crossProcess, 99),
        max: Math.max(...crossProcess),
        creatorRuns: runs,
      })
      await expectHealthy(workers)
    })

    it('after expiry: exactly one regeneration, every other caller served the stale value at once', async () => {
      const key = `stale:${randomUUID()}`
      await seed(key, 'stale value', Date.now() - 60_000)
      const creatorMs = 500
      const { runs, all } = await stampede(workers, { region: regionName, key, callers, creatorMs, label: 'fresh' })
      expect(all.filter((r) => r.error)).toEqual([])
      expect(runs).toBe(1)
      const fresh = all.filter((r) => typeof r.value === 'object')
      const stale = all.filter((r) => r.value === 'stale value')
      expect(fresh).toHaveLength(1)
      expect(stale).toHaveLength(processes * callers - 1)
      expect(fresh[0]!.latencyMs).toBeGreaterThanOrEqual(creatorMs - 5)
      const latencies = stale.map((r) => r.latencyMs)
      reportFigure(`${name} stale stampede: latency of callers served the stale value (ms)`, {
        p50: percentile(latencies, 50),
        p99: percentile(latencies, 99),
        max: Math.max(...latencies),
        creatorRuns: runs,
      })
      // "Without waiting": far below the creator's duration (the lot includes 250 calls sharing one event loop).
      expect(Math.max(...latencies)).toBeLessThan(creatorMs / 2)
      await expectHealthy(workers)
    })

    it('a lock holder killed mid-creation blocks the others for at most lockTimeout', async () => {
      const region = `${regionName}-kill`
      const holder = await Worker.start()
      try {
        await configure([holder, workers[0]!], region, { lockTimeout: '1s' })
        const key = `killed:${randomUUID()}`
        await holder.call('hold', { region, key })
        await holder.waitFor('holding')
        const killedAt = performance.now()
        await holder.kill('SIGKILL')
        const answer = await workers[0]!.call<{
          value?: CreatedValue
          error?: unknown
          latencyMs: number
          runs: number
        }>('getOrCreate', { region, key, creatorMs: 10, label: 'after kill' })
        const sinceKill = performance.now() - killedAt
        expect(answer.error).toBeUndefined()
        expect(answer.runs).toBe(1)
        expect(answer.value?.label).toBe('after kill')
        reportFigure(`${name} killed holder: wait until the lock was taken over (ms, lockTimeout 1000)`, {
          sinceKill,
          waiterLatency: answer.latencyMs,
        })
        expect(sinceKill).toBeLessThan(1000 + 400)
      } finally {
        await holder.kill('SIGKILL')
      }
      await expectHealthy(workers)
    })

    it('invalidate() in one process reaches the others: hard → miss, soft → stale served while one regenerates', async () => {
      const key = `inv:${randomUUID()}`
      const [first, ...others] = workers as [Worker, ...Worker[]]
      const made = await first.call<{ value: CreatedValue }>('getOrCreate', {
        region: regionName,
        key,
        creatorMs: 0,
        label: 'v1',
      })
      for (const w of others) {
        const read = await w.call<{ value: CreatedValue | null }>('get', { region: regionName, key })
        expect(read.value).toEqual(made.value)
      }

      const delays: number[] = []
      const propagate = async (hard: boolean) => {
        const before = await Promise.all(
          others.map((w) => w.call<{ hardAt: number; softAt: number }>('marks', { region: regionName })),
        )
        const seen = others.map((w, i) =>
          w.call<{ seenAt: number; value: number }>('waitForMarks', {
            region: regionName,
            hard,
            above: hard ? before[i]!.hardAt : before[i]!.softAt,
            timeoutMs: options.invalidationBudgetMs + 2000,
          }),
        )
        const done = await first.call<{ startedAt: number; at: number }>('invalidate', { region: regionName, hard })
        for (const s of await Promise.all(seen)) {
          expect(s.value).toBe(done.at)
          delays.push(s.seenAt - done.startedAt)
        }
      }

      await propagate(true)
      for (const w of others)
        expect((await w.call<{ value: unknown }>('get', { region: regionName, key })).value).toBeNull()
      const regenerated = await others[0]!.call<{ value: CreatedValue; runs: number }>('getOrCreate', {
        region: regionName,
        key,
        creatorMs: 0,
        label: 'v2',
      })
      expect(regenerated.runs).toBe(1)
      expect(regenerated.value.label).toBe('v2')

      await propagate(false)
      const { runs, all } = await stampede(workers, {
        region: regionName,
        key,
        callers: 50,
        creatorMs: 300,
        label: 'v3',
      })
      expect(all.filter((r) => r.error)).toEqual([])
      expect(runs).toBe(1)
      const stale = all.filter((r) => (r.value as CreatedValue).label === 'v2')
      expect(stale).toHaveLength(workers.length * 50 - 1)
      expect(Math.max(...stale.map((r) => r.latencyMs))).toBeLessThan(150)

      reportFigure(`${name} invalidation propagation to other processes (ms)`, {
        p50: percentile(delays, 50),
        max: Math.max(...delays),
        samples: delays.map((d) => d.toFixed(1)).join('/'),
      })
      expect(Math.max(...delays)).toBeLessThan(options.invalidationBudgetMs)
      await expectHealthy(workers)
    })
  })
}
