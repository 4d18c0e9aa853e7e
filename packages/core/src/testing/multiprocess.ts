/**
 * The multi-process scenarios every distributed backend must pass, registered as Vitest tests: N child processes
 * (default 4) × M concurrent callers (default 250) on one key, cold and expired; a lock holder killed mid-creation;
 * invalidation in one process seen by the others; group invalidation (dependencies filled and invalidated by
 * different processes, hard and soft tag invalidation) seen by every process.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createBackend } from '../backends/plugins.js'
import { CachedValue, NO_VALUE, jsonSerializer } from '../index.js'
import { reportFigure } from './measure.js'
import { percentile, startWorkers, stampede, Worker, type CreatedValue } from './workers.js'

export interface MultiProcessOptions {
  /** The backend's registered name (`'redis'`, `'memcached'`, or one of yours: see `workerSetup`). */
  backend: string
  /** The backend's arguments (called once the servers run). */
  arguments: () => Record<string, unknown>
  /**
   * `configure()`'s `l1`, to run every scenario with an in-process tier in front of the backend (a function: called
   * once the servers run, like `arguments`).
   */
  l1?: boolean | Record<string, unknown> | (() => boolean | Record<string, unknown>)
  /**
   * How long an invalidation (region-wide or by tag) may take to reach another process (the documented delay,
   * plus scheduling slack).
   */
  invalidationBudgetMs: number
  processes?: number
  callers?: number
  /**
   * A module (path or URL) every worker process imports before it configures regions: one that calls
   * `registerBackend` for `backend` when it is not built in.
   */
  workerSetup?: string | URL
}

/**
 * Creation and invalidation times have millisecond resolution across processes, and a value created in the same
 * millisecond as an invalidation counts as created after it (`ct < at` invalidates). IPC is fast enough for a test
 * to create a value in one process and invalidate it from another within one millisecond: step past it first.
 */
const nextMillisecond = () => new Promise<void>((resolve) => setTimeout(resolve, 2))
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

export function describeMultiProcess(name: string, options: MultiProcessOptions): void {
  const processes = options.processes ?? 4
  const callers = options.callers ?? 250
  const regionName = `mp-${randomUUID().slice(0, 8)}`
  let workers: Worker[] = []

  const configure = (
    targets: readonly Worker[],
    region: string,
    extra: Record<string, unknown> = {},
    regionOptions: Record<string, unknown> = {},
  ) =>
    Promise.all(
      targets.map((w) =>
        w.call('configure', {
          region,
          backend: options.backend,
          arguments: { ...options.arguments(), ...extra },
          expirationTime: 30,
          options: {
            ...(options.l1 === undefined ? {} : { l1: typeof options.l1 === 'function' ? options.l1() : options.l1 }),
            ...regionOptions,
          },
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

  /** What is stored under `key` (payload and creation time), read as another process would; `null` if nothing. */
  const readStored = async (key: string) => {
    const backend = createBackend(options.backend, options.arguments())
    backend.attach?.({ regionName, expirationTime: 30, serializer: jsonSerializer, reportError: () => {} })
    try {
      const value = await backend.get(key)
      return value === NO_VALUE ? null : { payload: value.payload, ct: value.ct }
    } finally {
      await backend.close?.()
    }
  }

  const expectHealthy = async (targets: readonly Worker[]) => {
    for (const w of targets) expect(w.unhandled, `worker ${w.pid} unhandled errors`).toEqual([])
  }

  describe(`${name}: ${processes} processes × ${callers} callers`, () => {
    beforeAll(async () => {
      workers = await startWorkers(processes, options.workerSetup)
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
      const holder = await Worker.start(options.workerSetup)
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

    describe('the lock across processes: takeovers are not errors, late holders overwrite nothing', () => {
      it('a holder SIGKILLed while 3 processes × 50 callers wait: one takeover creator answers all 150, no LockTimeoutError', async () => {
        const region = `${regionName}-takeover`
        const holder = await Worker.start(options.workerSetup)
        const waiting = workers.slice(0, 3)
        try {
          await configure([holder, ...waiting], region, { lockTimeout: '1s' })
          const key = `takeover:${randomUUID()}`
          await holder.call('hold', { region, key })
          await holder.waitFor('holding')
          const killedAt = performance.now()
          // The callers begin to wait (150 ms from now), then the holder dies. The process that takes its lock over
          // regenerates for 300 ms: past the moment the others have waited one lock timeout, within its own.
          const stampeding = stampede(waiting, { region, key, callers: 50, creatorMs: 300, label: 'takeover' })
          await sleep(100)
          await holder.kill('SIGKILL')
          const { runs, all } = await stampeding
          const sinceKill = performance.now() - killedAt
          expect(all.filter((r) => r.error)).toEqual([])
          expect(all).toHaveLength(150)
          expect(runs).toBe(1)
          const made = all[0]!.value as CreatedValue
          expect(
            all.every((r) => (r.value as CreatedValue).run === made.run && (r.value as CreatedValue).pid === made.pid),
          ).toBe(true)
          reportFigure(`${name} SIGKILLed holder, 3 × 50 callers waiting (lockTimeout 1000 ms)`, {
            answered: all.length,
            lockTimeoutErrors: all.filter((r) => r.error?.code === 'E_LOCK_TIMEOUT').length,
            lastAnswerSinceKillMs: sinceKill,
          })
          expect(sinceKill).toBeLessThan(1000 + 300 + 1000)
        } finally {
          await holder.kill('SIGKILL')
        }
        await expectHealthy(waiting)
      })

      it("a holder SIGSTOPped past its lock timeout overwrites neither a set() made meanwhile nor a takeover's value", async () => {
        const region = `${regionName}-paused`
        const paused = await Worker.start(options.workerSetup)
        const other = workers[0]!
        try {
          // A hard timeout far beyond the pause: the resumed creator finishes and tries to store.
          await configure([paused, other], region, { lockTimeout: '1s' }, { hardTimeout: '30s' })
          const pauseWhileCreating = async (key: string) => {
            const late = paused.call<{ value?: CreatedValue; error?: unknown }>('createAnnounced', {
              region,
              key,
              creatorMs: 300,
              label: 'late',
            })
            await paused.waitFor(`creating:${key}`)
            paused.pause()
            return { late } // wrapped: returning the promise itself would wait for it
          }

          // 1. While the holder is frozen, its lock runs out and someone set()s the key.
          const setMeanwhile = `paused-set:${randomUUID()}`
          const { late: late1 } = await pauseWhileCreating(setMeanwhile)
          await sleep(1300)
          await other.call('setMany', { region, keys: [setMeanwhile], value: 'set meanwhile' })
          const written = await readStored(setMeanwhile)
          expect(written?.payload).toBe('set meanwhile')
          paused.resume()
          expect((await late1).value?.label).toBe('late') // its own caller still gets what it made
          expect(await readStored(setMeanwhile)).toEqual(written) // same value, same creation time

          // 2. While the holder is frozen, another process takes its lock over and stores its own value.
          const takenOver = `paused-takeover:${randomUUID()}`
          const { late: late2 } = await pauseWhileCreating(takenOver)
          const takeover = await other.call<{ value: CreatedValue; runs: number; latencyMs: number }>('getOrCreate', {
            region,
            key: takenOver,
            creatorMs: 10,
            label: 'takeover',
          })
          expect(takeover.runs).toBe(1)
          const stored = await readStored(takenOver)
          expect((stored?.payload as CreatedValue).label).toBe('takeover')
          paused.resume()
          expect((await late2).value?.label).toBe('late')
          expect(await readStored(takenOver)).toEqual(stored)
          reportFigure(`${name} SIGSTOPped holder resumed after its lock timeout`, {
            takeoverWaitMs: takeover.latencyMs,
            overwritten: 0,
          })
        } finally {
          paused.resume()
          await paused.kill('SIGKILL')
        }
        await expectHealthy([other])
      })
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
        await nextMillisecond()
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

    describe('group invalidation', () => {
      const group = `${regionName}-group`
      const id = randomUUID().slice(0, 8)
      type Values = { values: Array<unknown> }
      const readAll = (keys: readonly string[]) =>
        Promise.all(workers.map((w) => w.call<Values>('getMany', { region: group, keys }).then((r) => r.values)))

      /** Invalidates `tags` in `from` and measures when each of `others` first reads `probe` as a miss. */
      const invalidateTags = async (
        from: Worker,
        others: readonly Worker[],
        tags: string[],
        hard: boolean,
        probe: string,
      ) => {
        const timeoutMs = options.invalidationBudgetMs + 2000
        const seen = others.map((w) =>
          w.call<{ seenAt: number }>('waitForMiss', { region: group, key: probe, timeoutMs }),
        )
        await nextMillisecond()
        const done = await from.call<{ startedAt: number }>('invalidateTags', { region: group, tags, hard })
        return (await Promise.all(seen)).map((s) => s.seenAt - done.startedAt)
      }

      beforeAll(async () => {
        await configure(workers, group)
      })

      it('a dependency filled by two processes and invalidated by a third removes its keys in every process', async () => {
        const [w0, w1, w2, w3] = workers as [Worker, Worker, Worker, Worker]
        const dependency = `user:${id}`
        const keys = Array.from({ length: 5 }, (_, i) => `dep:${id}:${i}`)
        const other = `dep:${id}:unrelated`
        await w0.call('setMany', { region: group, keys: [...keys, other], value: 'v' })
        await w0.call('dependencyAdd', { region: group, name: dependency, keys: keys.slice(0, 3) })
        await w1.call('dependencyAdd', { region: group, name: dependency, keys: keys.slice(3) })
        // Any process sees what the others recorded.
        const recorded = await w2.call<{ keys: string[] }>('dependencyKeys', { region: group, name: dependency })
        expect([...recorded.keys].sort()).toEqual(keys)
        for (const values of await readAll([...keys, other])) expect(values).toEqual(Array(6).fill('v'))

        expect(await w3.call('dependencyInvalidate', { region: group, name: dependency })).toEqual({ deleted: 5 })
        for (const values of await readAll([...keys, other])) expect(values).toEqual([...Array(5).fill(null), 'v'])
        // The bookkeeping went with the keys.
        expect(await w0.call('dependencyKeys', { region: group, name: dependency })).toEqual({ keys: [] })
        await expectHealthy(workers)
      })

      it('hard tag invalidation in one process: every process misses every value of the tag, and only those', async () => {
        const [w0, w1, w2, w3] = workers as [Worker, Worker, Worker, Worker]
        const tag = `user:${id}`
        const many = Array.from({ length: 200 }, (_, i) => `tag:${id}:item:${i}`)
        const several = `tag:${id}:report`
        const unrelated = `tag:${id}:other`
        await w0.call('setMany', { region: group, keys: many, value: 'item', tags: [tag] })
        await w1.call('setMany', {
          region: group,
          keys: [several],
          value: 'report',
          tags: [`sales:${id}`, `q3:${id}`, `emea:${id}`],
        })
        await w1.call('setMany', { region: group, keys: [unrelated], value: 'other', tags: [`user:${id}:not`] })
        const all = [...many, several, unrelated]
        // Every process reads them all (and so mirrors their tags).
        for (const values of await readAll(all)) expect(values).toEqual([...Array(200).fill('item'), 'report', 'other'])

        const delays = await invalidateTags(w1, [w0, w2, w3], [tag], true, many[0]!)
        for (const values of await readAll(all)) expect(values).toEqual([...Array(200).fill(null), 'report', 'other'])

        // One of several tags is enough.
        delays.push(...(await invalidateTags(w2, [w0, w1, w3], [`q3:${id}`], true, several)))
        for (const values of await readAll([several, unrelated])) expect(values).toEqual([null, 'other'])

        // A value created after the invalidation is valid everywhere.
        const made = await w3.call<{ value: CreatedValue; runs: number }>('getOrCreate', {
          region: group,
          key: many[0],
          creatorMs: 0,
          label: 'after',
          tags: [tag],
        })
        expect(made.runs).toBe(1)
        for (const w of workers)
          expect((await w.call<{ value: CreatedValue }>('get', { region: group, key: many[0] })).value).toEqual(
            made.value,
          )

        reportFigure(`${name} hard tag invalidation: propagation to other processes (ms)`, {
          p50: percentile(delays, 50),
          max: Math.max(...delays),
        })
        expect(Math.max(...delays)).toBeLessThan(options.invalidationBudgetMs)
        await expectHealthy(workers)
      })

      it('soft tag invalidation: every process serves the stale value while exactly one caller regenerates', async () => {
        const [w0, w1, ...rest] = workers as [Worker, Worker, ...Worker[]]
        const tag = `feed:${id}`
        const key = `tag:${id}:feed`
        const first = await w0.call<{ value: CreatedValue }>('getOrCreate', {
          region: group,
          key,
          creatorMs: 0,
          label: 'v1',
          tags: [tag],
        })
        for (const w of workers)
          expect((await w.call<{ value: unknown }>('get', { region: group, key })).value).toEqual(first.value)

        const delays = await invalidateTags(w1, [w0, ...rest], [tag], false, key)
        const { runs, all } = await stampede(workers, {
          region: group,
          key,
          callers: 50,
          creatorMs: 300,
          label: 'v2',
          tags: [tag],
        })
        expect(all.filter((r) => r.error)).toEqual([])
        expect(runs).toBe(1)
        const stale = all.filter((r) => (r.value as CreatedValue).label === 'v1')
        expect(stale).toHaveLength(workers.length * 50 - 1)
        expect(Math.max(...stale.map((r) => r.latencyMs))).toBeLessThan(150)
        reportFigure(`${name} soft tag invalidation: propagation to other processes (ms)`, {
          p50: percentile(delays, 50),
          max: Math.max(...delays),
        })
        expect(Math.max(...delays)).toBeLessThan(options.invalidationBudgetMs)
        await expectHealthy(workers)
      })
    })
  })
}
