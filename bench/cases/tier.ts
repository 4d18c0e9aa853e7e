/**
 * Case — Redis-backed hits: what an in-process L1 buys a Redis region, side by side with the peer that offers the
 * same deployment (bentocache: memory L1 + Redis L2 + a Redis bus) and with Corral's own floor, a memory region.
 *
 * - Hit rate: sequential awaited `getOrCreate` calls on warm keys (one hot key, and Zipf s=1.0 over KEY_COUNT keys,
 *   all of them held by every L1), measured as in the hit-path case: the same precomputed key sequence for
 *   everyone, interleaved rounds with a rotating order, a full GC before each round, a compiled loop per subject,
 *   median of the measured rounds. Corral without an L1 answers every hit with a round trip to Redis, so it runs
 *   fewer calls per round (ops/s stay comparable).
 * - Redis commands per hit for the L1 subjects (INFO commandstats around a batch of hits): the goal is none.
 * - Waiter latency with the L1 on: PROCESSES workers × CALLERS callers on a cold key, one creator; from its store
 *   (the `regenerate` event) to each waiting process's first answer, on the shared monotonic clock.
 */
import { createRegion, RegionRegistry } from '@corral/core'
import {
  bentocacheL1L2Bus,
  corralRedis,
  corralRedisL1,
  type CacheUnderTest,
  type Creator,
  type RedisAdapter,
} from '../lib/adapters.js'
import type { BenchCase } from '../lib/case.js'
import { commandStats, describeCalls, flushAll, resetCommandStats } from '../lib/redis.js'
import { collectGarbage, median, percentile, zipfSequence } from '../lib/stats.js'
import { formatMs, formatRate, formatRatio, type Table } from '../lib/table.js'
import { measureWaiterLatency, WAITER_CALLERS, WAITER_PROCESSES } from './redis-cost.js'

const KEY_COUNT = 1000
const ZIPF_EXPONENT = 1.0
/** calls per round for subjects that answer from memory */
const ITERATIONS = 50_000
/** calls per round for Corral without an L1 (a round trip each) */
const NETWORK_ITERATIONS = 2_000
const WARMUP_ROUNDS = 2
const ROUNDS = 9
const TTL_MS = 300_000
const COMMAND_HITS = 1000
/** Fewer than redis-cost's 50: the published tier figures were measured with 20 (60 waiting-process samples). */
const WAITER_TRIALS = 20

type Pass = (cache: CacheUnderTest, keys: readonly string[]) => Promise<void>
const AsyncFunction = (async () => {}).constructor as new (...parameters: string[]) => Pass

/** A fresh copy of the measured loop per subject, so each call site stays monomorphic. */
function compilePass(): Pass {
  return new AsyncFunction('cache', 'keys', 'for (let i = 0; i < keys.length; i++) await cache.getOrCreate(keys[i])')
}

interface SubjectSpec {
  id: string
  label: string
  deployment: string
  /** answers from memory (full rounds) or from the network (short rounds) */
  inMemory: boolean
  create(creator: Creator, url: string, keyPrefix: string): Promise<CacheUnderTest>
}

const fromAdapter = (adapter: RedisAdapter, inMemory: boolean): SubjectSpec => ({
  id: adapter.id,
  label: adapter.label,
  deployment: adapter.deployment,
  inMemory,
  create: (creator, url, keyPrefix) => adapter.create({ creator, url, keyPrefix, ttlMs: TTL_MS }),
})

const memoryRegion: SubjectSpec = {
  id: 'corral-memory',
  label: 'corral (memory region)',
  deployment: "configure('memory'): one process, no Redis (the floor an L1 aims at)",
  inMemory: true,
  create: async (creator) => {
    const region = createRegion({ name: 'bench', registry: new RegionRegistry() }).configure('memory', {
      expirationTime: TTL_MS / 1000,
      arguments: { maxEntries: 10_000 },
    })
    return { getOrCreate: (key) => region.getOrCreate(key, () => creator(key)), close: () => region.close() }
  },
}

const SUBJECTS: readonly SubjectSpec[] = [
  memoryRegion,
  fromAdapter(corralRedisL1, true),
  fromAdapter(bentocacheL1L2Bus, true),
  fromAdapter(corralRedis, false),
]

interface Subject {
  spec: SubjectSpec
  cache: CacheUnderTest
  pass: Pass
  creatorCalls: number
  roundOps: number[]
}

interface WorkloadResult {
  workload: string
  results: Array<{ id: string; label: string; opsPerSecond: number; rounds: number[]; creatorCallsMeasured: number }>
}

async function measureWorkload(
  workload: string,
  keys: readonly string[],
  url: string,
  log: (message: string) => void,
): Promise<WorkloadResult> {
  const subjects: Subject[] = []
  for (const spec of SUBJECTS) {
    const subject: Subject = { spec, cache: undefined!, pass: compilePass(), creatorCalls: 0, roundOps: [] }
    subject.cache = await spec.create(
      async (key) => {
        subject.creatorCalls++
        return { key, payload: 'x'.repeat(16) }
      },
      url,
      `tier:${spec.id}:`,
    )
    subjects.push(subject)
  }
  // Warm every key in every cache (twice: a value read back after the L1's bus subscribed is held by the L1).
  const distinct = [...new Set(keys)]
  for (let pass = 0; pass < 2; pass++)
    for (const subject of subjects) for (const key of distinct) await subject.cache.getOrCreate(key)
  const networkKeys = keys.slice(0, NETWORK_ITERATIONS)

  for (let round = 0; round < WARMUP_ROUNDS + ROUNDS; round++) {
    const measured = round >= WARMUP_ROUNDS
    if (round === WARMUP_ROUNDS) for (const subject of subjects) subject.creatorCalls = 0
    for (let i = 0; i < subjects.length; i++) {
      const subject = subjects[(i + round) % subjects.length]!
      const sequence = subject.spec.inMemory ? keys : networkKeys
      collectGarbage()
      const started = performance.now()
      await subject.pass(subject.cache, sequence)
      const seconds = (performance.now() - started) / 1000
      if (measured) subject.roundOps.push(sequence.length / seconds)
    }
    log(`  ${workload}: round ${round + 1}/${WARMUP_ROUNDS + ROUNDS}${measured ? '' : ' (warm-up)'}`)
  }
  await Promise.all(subjects.map((subject) => subject.cache.close()))
  return {
    workload,
    results: subjects.map((subject) => ({
      id: subject.spec.id,
      label: subject.spec.label,
      opsPerSecond: median(subject.roundOps),
      rounds: subject.roundOps.map(Math.round),
      creatorCallsMeasured: subject.creatorCalls,
    })),
  }
}

/** Redis commands executed during COMMAND_HITS sequential hits on a warm key. */
async function commandsPerHit(spec: SubjectSpec, url: string): Promise<Record<string, number>> {
  await flushAll(url)
  const cache = await spec.create(async (key) => ({ key }), url, `tier-cost:${spec.id}:`)
  try {
    for (let i = 0; i < 50; i++) await cache.getOrCreate('warm-key')
    await resetCommandStats(url)
    for (let i = 0; i < COMMAND_HITS; i++) await cache.getOrCreate('warm-key')
    return await commandStats(url)
  } finally {
    await cache.close()
  }
}

const opsOf = (workload: WorkloadResult, id: string) =>
  workload.results.find((result) => result.id === id)?.opsPerSecond ?? Number.NaN

export const tierCase: BenchCase = {
  id: 'tier',
  title: 'Redis-backed hits: an L1 in front of Redis',
  description:
    'sequential awaited hits on a Redis-backed region with an L1, without one, and on bentocache L1 + L2 + bus, against a memory region; Redis commands per hit; waiter latency with the L1 on',
  needsRedis: true,
  async run({ redisUrl, log }) {
    const url = redisUrl!
    await flushAll(url)
    const names = Array.from({ length: KEY_COUNT }, (_, i) => `user:${i}`)
    const hotKey = Array.from({ length: ITERATIONS }, () => names[0]!)
    const zipf = Array.from(zipfSequence(KEY_COUNT, ZIPF_EXPONENT, ITERATIONS, 42), (rank) => names[rank]!)
    const workloads = [
      await measureWorkload('single hot key', hotKey, url, log),
      await measureWorkload('zipf', zipf, url, log),
    ]
    const [hot, skewed] = workloads as [WorkloadResult, WorkloadResult]
    log('  commands per hit')
    const commands: Record<string, Record<string, number>> = {}
    for (const spec of SUBJECTS.filter((s) => s.id !== memoryRegion.id))
      commands[spec.id] = await commandsPerHit(spec, url)
    log('  waiter latency (l1)')
    const waiters = await measureWaiterLatency(url, {
      adapter: corralRedisL1.id,
      keyPrefix: 'tier-waiters:',
      trials: WAITER_TRIALS,
    })

    const l1 = corralRedisL1.id
    const rows = SUBJECTS.map((spec) => [
      spec.label,
      formatRate(opsOf(hot, spec.id)),
      formatRate(opsOf(skewed, spec.id)),
      formatRatio(opsOf(hot, spec.id) / opsOf(hot, memoryRegion.id)),
      spec.id === l1 ? '1.00×' : formatRatio(opsOf(hot, l1) / opsOf(hot, spec.id)),
      spec.id === l1 ? '1.00×' : formatRatio(opsOf(skewed, l1) / opsOf(skewed, spec.id)),
      spec.id === memoryRegion.id ? 'n/a' : describeCalls(commands[spec.id] ?? {}, COMMAND_HITS),
      spec.deployment,
    ])
    const misses = workloads.flatMap((w) => w.results.filter((r) => r.creatorCallsMeasured > 0))
    const goals = workloads.map((w) => ({
      workload: w.workload,
      vsMemory: opsOf(w, l1) / opsOf(w, memoryRegion.id),
      vsBentocache: opsOf(w, l1) / opsOf(w, bentocacheL1L2Bus.id),
    }))
    const main: Table = {
      title: 'Redis-backed hits: ops/s (median of rounds), ratios, Redis commands per hit',
      header: [
        'library',
        'hot key ops/s',
        'zipf ops/s',
        '÷ memory region (hot)',
        'corral l1 ÷ it (hot)',
        'corral l1 ÷ it (zipf)',
        'commands per hit',
        'deployment',
      ],
      rows,
      notes: [
        `${ITERATIONS.toLocaleString('en-US')} sequential awaited calls per round (corral without an L1: ` +
          `${NETWORK_ITERATIONS.toLocaleString('en-US')}, a round trip each), ${WARMUP_ROUNDS} warm-up + ${ROUNDS} ` +
          `measured rounds, interleaved; zipf: s=${ZIPF_EXPONENT} over ${KEY_COUNT.toLocaleString('en-US')} warm keys.`,
        'Goals: corral with an L1 ≥ 0.7× a memory region and ≥ 20× bentocache L1 + L2 + bus. Here: ' +
          goals.map((g) => `${g.workload} ${formatRatio(g.vsMemory)} / ${formatRatio(g.vsBentocache)}`).join('; ') +
          '.',
        `Commands per hit: INFO commandstats around ${COMMAND_HITS} sequential hits on a warm key.`,
        misses.length === 0
          ? 'Every measured call was a hit (no creator ran during the measured rounds).'
          : `WARNING: creators ran during measurement: ${misses.map((m) => `${m.label} ${m.creatorCallsMeasured}`).join(', ')}`,
      ],
    }
    const waiterTable: Table = {
      title: `Corral with an L1, waiter latency: store → waiting process sees the value (${WAITER_PROCESSES} processes × ${WAITER_CALLERS} callers, ${WAITER_TRIALS} trials)`,
      header: ['measured', 'samples', 'p50', 'p99', 'max'],
      rows: waiters.unavailable
        ? [['n/a', '0', 'n/a', 'n/a', `not available: ${waiters.unavailable}`]]
        : [
            [
              'waiting process: first answer',
              String(waiters.processMs.length),
              formatMs(percentile(waiters.processMs, 50)),
              formatMs(percentile(waiters.processMs, 99)),
              formatMs(percentile(waiters.processMs, 100)),
            ],
          ],
      notes: [`Creator runs per trial (all processes): ${waiters.creatorRunsPerTrial.join(', ')}. Goal: p99 ≤ 2 ms.`],
    }
    return {
      tables: [main, waiterTable],
      data: {
        iterationsPerRound: ITERATIONS,
        networkIterationsPerRound: NETWORK_ITERATIONS,
        warmupRounds: WARMUP_ROUNDS,
        rounds: ROUNDS,
        keyCount: KEY_COUNT,
        workloads,
        goals,
        commandsPerHit: Object.fromEntries(
          Object.entries(commands).map(([id, calls]) => [
            id,
            Object.fromEntries(Object.entries(calls).map(([name, count]) => [name, count / COMMAND_HITS])),
          ]),
        ),
        waiterLatency: {
          processes: WAITER_PROCESSES,
          callers: WAITER_CALLERS,
          trials: WAITER_TRIALS,
          p50Ms: percentile(waiters.processMs, 50),
          p99Ms: percentile(waiters.processMs, 99),
          processMs: waiters.processMs,
          creatorRunsPerTrial: waiters.creatorRunsPerTrial,
          unavailable: waiters.unavailable,
        },
      },
    }
  },
}
