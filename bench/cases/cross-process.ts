/**
 * Case 4 — cross-process stampede through Redis: PROCESSES worker processes (application instances) × CALLERS
 * concurrent callers each, all on one cold key at the same instant, creator CREATOR_MS. In-process coalescing
 * caps each process at one creator run; only a distributed lock brings the total to one. The workers agree on
 * a start time on the machine's monotonic clock, so they hit Redis together; each counts its own creator runs.
 */
import { REDIS_ADAPTERS } from '../lib/adapters.js'
import type { BenchCase } from '../lib/case.js'
import { flushAll } from '../lib/redis.js'
import { median, sum } from '../lib/stats.js'
import { formatMs, type Table } from '../lib/table.js'
import { WorkerPool } from '../lib/worker-pool.js'
import type { RunResult } from '../lib/worker-protocol.js'

const PROCESSES = 4
const CALLERS = 250
const CREATOR_MS = 50
const TRIALS = 5

interface Trial {
  creatorCalls: number
  creatorCallsPerProcess: number[]
  answered: number
  errors: string[]
  /** from the common start to the last caller's answer */
  lastAnswerMs: number
}

interface AdapterOutcome {
  id: string
  label: string
  deployment: string
  /** why it could not run, if it could not */
  unavailable?: string
  trials: Trial[]
}

export function summarizeTrial(results: readonly RunResult[]): Trial {
  const start = Math.min(...results.map((r) => r.startedAt))
  return {
    creatorCalls: sum(results.map((r) => r.creatorCalls)),
    creatorCallsPerProcess: results.map((r) => r.creatorCalls),
    answered: sum(results.map((r) => r.answeredAt.length)),
    errors: results.flatMap((r) => r.errors),
    lastAnswerMs: Math.max(...results.flatMap((r) => r.answeredAt)) - start,
  }
}

export const crossProcessCase: BenchCase = {
  id: 'cross-process',
  title: 'Cross-process stampede through Redis',
  description: `${PROCESSES} processes × ${CALLERS} concurrent callers on one cold key, creator takes ${CREATOR_MS} ms: total creator runs`,
  needsRedis: true,
  async run({ redisUrl, log }) {
    const url = redisUrl!
    const pool = await WorkerPool.start(PROCESSES)
    const outcomes: AdapterOutcome[] = []
    try {
      for (const adapter of REDIS_ADAPTERS) {
        log(`  ${adapter.label}`)
        const outcome: AdapterOutcome = {
          id: adapter.id,
          label: adapter.label,
          deployment: adapter.deployment,
          trials: [],
        }
        outcomes.push(outcome)
        await flushAll(url)
        try {
          await pool.setup({
            adapter: adapter.id,
            url,
            keyPrefix: `bench:${adapter.id}:`,
            ttlMs: 300_000,
            creatorMs: CREATOR_MS,
          })
        } catch (error) {
          outcome.unavailable = (error as Error).message
          log(`    not available: ${outcome.unavailable}`)
          await pool.teardown().catch(() => undefined)
          continue
        }
        for (let trial = 0; trial < TRIALS; trial++) {
          outcome.trials.push(summarizeTrial(await pool.run(`cold-key-${trial}`, CALLERS)))
        }
        await pool.teardown()
      }
    } finally {
      await pool.stop()
    }

    const table: Table = {
      title: `Cross-process stampede: ${PROCESSES} processes × ${CALLERS} callers, one cold key, ${CREATOR_MS} ms creator`,
      header: ['library', 'creator runs per trial', 'callers answered', 'errors', 'last answer (median)', 'deployment'],
      rows: outcomes.map((o) =>
        o.unavailable
          ? [o.label, 'n/a', 'n/a', 'n/a', 'n/a', `not available: ${o.unavailable}`]
          : [
              o.label,
              o.trials.map((t) => t.creatorCalls).join(', '),
              `${median(o.trials.map((t) => t.answered))} / ${PROCESSES * CALLERS}`,
              String(sum(o.trials.map((t) => t.errors.length))),
              formatMs(median(o.trials.map((t) => t.lastAnswerMs))),
              o.deployment,
            ],
      ),
      notes: [
        `${TRIALS} trials per library, each on a fresh key. 1 creator run per trial = the stampede was stopped across ` +
          `processes; ${PROCESSES} = one per process (in-process coalescing only).`,
        ...outcomes.flatMap((o) =>
          o.trials
            .flatMap((t) => t.errors)
            .slice(0, 1)
            .map((error) => `- ${o.label}, first error: ${error}`),
        ),
      ],
    }
    return {
      tables: [table],
      data: { processes: PROCESSES, callers: CALLERS, creatorMs: CREATOR_MS, trials: TRIALS, outcomes },
    }
  },
}
