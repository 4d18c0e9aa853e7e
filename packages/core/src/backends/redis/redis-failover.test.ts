/**
 * Failover of the engines users scale onto, under load from real processes: a Redis Sentinel failover (the
 * master SIGKILLed, its replica promoted) and a Redis Cluster primary failover (a primary SIGKILLed, its replica
 * promoted). Through and after it: no call throws or hangs, calls recover without a restart (hits resume), the
 * lock still yields one creator across processes, and invalidations still reach every process.
 */
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { describe, expect, it } from 'vitest'
import { parseInfo, redisCommand, startRedisCluster, startRedisSentinel } from '../../../../../test-support/servers.js'
import { reportFigure } from '../../testing/measure.js'
import { percentile, stampede, startWorkers, type LoadSample, type Worker } from '../../testing/workers.js'

const PROCESSES = 3
const KEYS = 20
/** how long each process keeps calling; the fault comes after KILL_AFTER_MS */
const LOAD_MS = 10_000
const KILL_AFTER_MS = 1_000
/** at the end of the load, this long must be nothing but hits */
const SETTLED_MS = 1_500

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))
const now = () => performance.timeOrigin + performance.now()

interface LoadReport {
  pid: number
  samples: LoadSample[]
  backendErrors: number
}

interface Failover {
  /** backend arguments of the processes */
  arguments: Record<string, unknown>
  /** waits until what the processes wrote so far is on the replicas */
  replicated: () => Promise<void>
  /** the fault: SIGKILL of the master (or of a cluster primary) */
  kill: () => Promise<void>
  /** resolves once a replica has been promoted */
  promoted: () => Promise<void>
}

/**
 * Runs the scenario: PROCESSES workers call getOrCreate on KEYS warm keys (4 loops each), the master dies during
 * the load, a replica is promoted; then the checks and figures.
 */
async function failoverUnderLoad(label: string, failover: Failover): Promise<void> {
  const workers = await startWorkers(PROCESSES)
  try {
    const region = `failover-${label}-${randomUUID().slice(0, 8)}`
    await Promise.all(
      workers.map((w) =>
        w.call('configure', {
          region,
          backend: 'redis',
          arguments: { keyPrefix: 'fo:', lockTimeout: '2s', ...failover.arguments },
          expirationTime: 60,
        }),
      ),
    )
    const id = randomUUID().slice(0, 8)
    const keys = Array.from({ length: KEYS }, (_, i) => `load:${id}:${i}`)
    await workers[0]!.call('setMany', { region, keys, value: 'warm' })
    await failover.replicated()

    const loads = workers.map((w) =>
      w.call<LoadReport>('load', { region, keys, durationMs: LOAD_MS, concurrency: 4, pauseMs: 5 }, LOAD_MS + 30_000),
    )
    await sleep(KILL_AFTER_MS)
    const killedAt = now()
    await failover.kill()
    await failover.promoted()
    const promotedMs = now() - killedAt
    const reports = await Promise.all(loads)

    const all = reports.flatMap((r) => r.samples)
    const errors = all.filter((s) => s.result === 'error')
    const afterKill = (r: LoadReport) => r.samples.filter((s) => s.at >= killedAt)
    /** per process: ms from the kill until hits resumed for good (the first hit after the last non-hit) */
    const resumeMs = reports.map((r) => {
      const samples = afterKill(r)
      const lastMiss = samples.findLastIndex((s) => s.result !== 'hit')
      if (lastMiss < 0) return 0
      const resumed = samples.slice(lastMiss + 1).find((s) => s.result === 'hit')
      return resumed === undefined ? Number.POSITIVE_INFINITY : resumed.at - killedAt
    })
    const outageCalls = reports.map((r) => afterKill(r).filter((s) => s.result !== 'hit').length)
    reportFigure(`redis ${label} failover under load (${PROCESSES} processes × 4 loops, ${KEYS} keys)`, {
      promotedAfterMs: promotedMs,
      hitsResumedAfterMs: Math.max(...resumeMs),
      calls: all.length,
      callsNotHitsAfterKill: outageCalls.join('/'),
      errors: errors.length,
      backendErrorEvents: reports.map((r) => r.backendErrors).join('/'),
      callP99Ms: percentile(
        all.map((s) => s.ms),
        99,
      ),
      callMaxMs: Math.max(...all.map((s) => s.ms)),
    })
    // No call threw (the region answers from the creator while the server is away) and none was stranded.
    expect(errors).toEqual([])
    expect(Math.max(...all.map((s) => s.ms))).toBeLessThan(5_000)
    // The outage was real, and every process recovered by itself: the last stretch is nothing but hits.
    expect(Math.max(...outageCalls)).toBeGreaterThan(0)
    for (const r of reports) {
      const end = Math.max(...r.samples.map((s) => s.at))
      const settled = r.samples.filter((s) => s.at > end - SETTLED_MS)
      expect(settled.length).toBeGreaterThan(10)
      expect(settled.filter((s) => s.result !== 'hit')).toEqual([])
    }
    expect(Math.max(...resumeMs)).toBeLessThan(LOAD_MS - KILL_AFTER_MS - SETTLED_MS)

    // The lock still yields one creator across processes.
    const { runs, all: callers } = await stampede(workers, {
      region,
      key: `after:${id}`,
      callers: 50,
      creatorMs: 100,
      label: 'after failover',
    })
    expect(callers.filter((r) => r.error)).toEqual([])
    expect(runs).toBe(1)

    // Invalidations still reach every process.
    const [first, ...others] = workers as [Worker, ...Worker[]]
    const before = await Promise.all(others.map((w) => w.call<{ hardAt: number }>('marks', { region })))
    const seen = others.map((w, i) =>
      w.call<{ seenAt: number; value: number }>('waitForMarks', {
        region,
        hard: true,
        above: before[i]!.hardAt,
        timeoutMs: 5_000,
      }),
    )
    await sleep(2)
    const done = await first.call<{ startedAt: number; at: number }>('invalidate', { region, hard: true })
    const delays = (await Promise.all(seen)).map((s) => {
      expect(s.value).toBe(done.at)
      return s.seenAt - done.startedAt
    })
    reportFigure(`redis ${label}: after the failover, one creator and invalidation propagation (ms)`, {
      creatorRuns: runs,
      invalidationMaxMs: Math.max(...delays),
    })
    for (const w of workers) expect(w.unhandled, `worker ${w.pid}`).toEqual([])
  } finally {
    await Promise.all(workers.map((w) => w.stop()))
  }
}

describe('redis failover under load', () => {
  it('Sentinel: the master SIGKILLed, its replica promoted', { timeout: 90_000 }, async () => {
    const sentinel = await startRedisSentinel({ name: 'failover', replicas: 1, sentinels: 1, downAfterMs: 1000 })
    const master = new Redis({ host: sentinel.master.host, port: sentinel.master.port, lazyConnect: true })
    master.on('error', () => {}) // it is killed below
    try {
      await failoverUnderLoad('sentinel', {
        arguments: { sentinels: sentinel.sentinels, name: sentinel.name },
        replicated: async () => {
          await master.call('WAIT', 1, 5000)
        },
        kill: () => sentinel.masterServer.kill(),
        promoted: async () => {
          const old = `${sentinel.master.host}:${sentinel.master.port}`
          for (const deadline = Date.now() + 30_000; Date.now() < deadline; await sleep(50)) {
            const current = await sentinel.currentMaster()
            if (`${current.host}:${current.port}` !== old) return
          }
          throw new Error('no replica was promoted within 30 s')
        },
      })
    } finally {
      master.disconnect()
      await sentinel.stop()
    }
  })

  it('Cluster: a primary SIGKILLed, its replica promoted', { timeout: 120_000 }, async () => {
    const cluster = await startRedisCluster({ masters: 3, replicas: 1, nodeTimeoutMs: 1000 })
    const victim = cluster.masters[0]!
    try {
      await failoverUnderLoad('cluster', {
        arguments: { cluster: cluster.nodes },
        replicated: async () => {
          await Promise.all(cluster.masters.map((m) => redisCommand(m, ['WAIT', 1, 5000])))
        },
        kill: () => victim.kill(),
        promoted: async () => {
          const replica = cluster.replicas[0]!
          for (const deadline = Date.now() + 30_000; Date.now() < deadline; await sleep(50)) {
            const role = parseInfo(String(await redisCommand(replica, ['INFO', 'replication']))).role
            const state = parseInfo(String(await redisCommand(replica, ['CLUSTER', 'INFO']))).cluster_state
            if (role === 'master' && state === 'ok') return
          }
          throw new Error('no replica was promoted within 30 s')
        },
      })
    } finally {
      await cluster.stop()
    }
  })
})
