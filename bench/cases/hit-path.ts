/**
 * Case 1 — hit path on the memory store: how much a warm read costs through each library's get-or-compute call.
 *
 * How it is measured, and why:
 * - Sequential awaited calls (`for (...) await cache.getOrCreate(key)`), as a request handler does. Firing many
 *   calls at once would measure promise scheduling and in-flight deduplication instead of the read itself.
 * - Every library runs the same precomputed key sequence (ITERATIONS calls per round), so all do identical work;
 *   ops/s is the median over ROUNDS rounds after WARMUP_ROUNDS rounds that let V8 optimize.
 * - Rounds are interleaved across libraries (round 1 of each, then round 2 of each, ...), with the order rotated
 *   every round, so background noise on the machine spreads over all of them instead of hitting one.
 * - A full garbage collection before every round (with --expose-gc), so that no library pays on its own clock
 *   for the garbage another one left behind.
 * - Each library gets its own compiled copy of the loop, so the `cache.getOrCreate` call site stays
 *   monomorphic for it; a shared loop would be megamorphic and would penalize whoever runs later.
 * - Two key distributions: one hot key (the floor cost of a hit) and Zipf s=1.0 over 10k keys (a realistic
 *   skew: a few keys take most reads, the long tail keeps the lookup honest). All keys are warmed first, and the
 *   creator call count is checked to be 0 during the measurement: every call is a hit.
 * - Corral once more with a subscriber on its `corral:getOrCreate` tracing channel (diagnostics_channel): what an
 *   APM tool's subscription costs, and, against the plain Corral row, that an unsubscribed channel costs nothing.
 *   It is measured in a phase of its own, after the others, subscribed for the whole phase, as an APM tool
 *   subscribes once at startup: Node.js switches a channel's prototype on its first subscriber and back on its
 *   last unsubscribe, and each switch deoptimizes the code that checked it. Subscribing and unsubscribing around
 *   every round, interleaved with the other subjects, deoptimized Corral's shared code dozens of times per run
 *   (and lru-cache's `fetch`, through the garbage collector), which no application does.
 */
import diagnosticsChannel from 'node:diagnostics_channel'
import {
  MEMORY_ADAPTERS,
  corral,
  corralTelemetryOff,
  plainMap,
  type CacheUnderTest,
  type MemoryAdapter,
} from '../lib/adapters.js'
import type { BenchCase } from '../lib/case.js'
import { collectGarbage, median, zipfSequence } from '../lib/stats.js'
import { formatRate, formatRatio, type Table } from '../lib/table.js'

const KEY_COUNT = 10_000
const ZIPF_EXPONENT = 1.0
/** Calls per round, identical for every library; sized so the slowest library's round takes ~0.5 s. */
const ITERATIONS = 100_000
const WARMUP_ROUNDS = 3
const ROUNDS = 15
const TTL_MS = 300_000

/** A memory adapter, possibly with something to hold while it is measured (then in a phase of its own). */
interface HitAdapter extends MemoryAdapter {
  /** called before the subject's phase; returns what undoes it after the phase */
  duringPhase?: () => () => void
}

/** Corral with a do-nothing subscriber on every event of its getOrCreate tracing channel. */
const corralChannelSubscribed: HitAdapter = {
  ...corral,
  id: 'corral-channel-subscribed',
  label: 'corral (tracing channel subscribed)',
  duringPhase() {
    const channel = diagnosticsChannel.tracingChannel('corral:getOrCreate')
    const noop = () => {}
    const subscribers = { start: noop, end: noop, asyncStart: noop, asyncEnd: noop, error: noop }
    channel.subscribe(subscribers)
    return () => channel.unsubscribe(subscribers)
  },
}

const HIT_ADAPTERS: readonly HitAdapter[] = [...MEMORY_ADAPTERS, corralChannelSubscribed]

type Pass = (cache: CacheUnderTest, keys: readonly string[]) => Promise<void>
const AsyncFunction = (async () => {}).constructor as new (...parameters: string[]) => Pass

/** A fresh copy of the measured loop (see the header: one per library keeps its call site monomorphic). */
function compilePass(): Pass {
  return new AsyncFunction('cache', 'keys', 'for (let i = 0; i < keys.length; i++) await cache.getOrCreate(keys[i])')
}

interface Subject {
  adapter: HitAdapter
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
  log: (message: string) => void,
): Promise<WorkloadResult> {
  const subjects: Subject[] = []
  for (const adapter of HIT_ADAPTERS) {
    const subject: Subject = { adapter, cache: undefined!, pass: compilePass(), creatorCalls: 0, roundOps: [] }
    subject.cache = await adapter.create({
      creator: async (key) => {
        subject.creatorCalls++
        return { key, payload: 'x'.repeat(16) }
      },
      ttlMs: TTL_MS,
      maxEntries: KEY_COUNT * 2,
    })
    subjects.push(subject)
  }

  const distinctKeys = [...new Set(keys)]
  for (const subject of subjects) for (const key of distinctKeys) await subject.cache.getOrCreate(key)

  // Interleaved rounds for the subjects that hold nothing, then a phase of its own for each that does.
  const phases = [
    subjects.filter((subject) => subject.adapter.duringPhase === undefined),
    ...subjects.filter((subject) => subject.adapter.duringPhase !== undefined).map((subject) => [subject]),
  ]
  for (const phase of phases) {
    const undo = phase.length === 1 ? phase[0]!.adapter.duringPhase?.() : undefined
    for (let round = 0; round < WARMUP_ROUNDS + ROUNDS; round++) {
      const measured = round >= WARMUP_ROUNDS
      if (round === WARMUP_ROUNDS) for (const subject of phase) subject.creatorCalls = 0
      for (let i = 0; i < phase.length; i++) {
        const subject = phase[(i + round) % phase.length]!
        collectGarbage()
        const started = performance.now()
        await subject.pass(subject.cache, keys)
        const seconds = (performance.now() - started) / 1000
        if (measured) subject.roundOps.push(keys.length / seconds)
      }
      const label = phase.length === 1 ? ` (${phase[0]!.adapter.label})` : ''
      log(`  ${workload}${label}: round ${round + 1}/${WARMUP_ROUNDS + ROUNDS}${measured ? '' : ' (warm-up)'}`)
    }
    undo?.()
  }
  await Promise.all(subjects.map((subject) => subject.cache.close()))

  return {
    workload,
    results: subjects.map((subject) => ({
      id: subject.adapter.id,
      label: subject.adapter.label,
      opsPerSecond: median(subject.roundOps),
      rounds: subject.roundOps.map(Math.round),
      creatorCallsMeasured: subject.creatorCalls,
    })),
  }
}

function opsOf(workload: WorkloadResult, id: string): number {
  return workload.results.find((result) => result.id === id)?.opsPerSecond ?? Number.NaN
}

export const hitPathCase: BenchCase = {
  id: 'hit',
  title: 'Hit path (memory store)',
  description: 'sequential awaited get-or-compute calls on warm keys: one hot key, and Zipf s=1.0 over 10k keys',
  needsRedis: false,
  async run({ log }) {
    const names = Array.from({ length: KEY_COUNT }, (_, i) => `user:${i}`)
    const hotKey = Array.from({ length: ITERATIONS }, () => names[0]!)
    const zipf = Array.from(zipfSequence(KEY_COUNT, ZIPF_EXPONENT, ITERATIONS, 42), (rank) => names[rank]!)

    const workloads = [await measureWorkload('single hot key', hotKey, log), await measureWorkload('zipf', zipf, log)]
    const [hot, skewed] = workloads as [WorkloadResult, WorkloadResult]

    const rows = HIT_ADAPTERS.map((adapter) => {
      const hotOps = opsOf(hot, adapter.id)
      const zipfOps = opsOf(skewed, adapter.id)
      return [
        adapter.label,
        formatRate(hotOps),
        formatRate(zipfOps),
        adapter.id === corral.id ? '1.00×' : formatRatio(opsOf(hot, corral.id) / hotOps),
        adapter.id === corral.id ? '1.00×' : formatRatio(opsOf(skewed, corral.id) / zipfOps),
        adapter.call,
      ]
    })
    const misses = workloads.flatMap((w) => w.results.filter((r) => r.creatorCallsMeasured > 0))

    const telemetry = workloads.map((workload) => {
      const on = opsOf(workload, corral.id)
      const off = opsOf(workload, corralTelemetryOff.id)
      return { workload: workload.workload, on, off, ratio: on / off, overhead: 1 - on / off }
    })

    const main: Table = {
      title: 'Hit path: ops/s (median of rounds) and Corral (telemetry on) ÷ library',
      header: ['library', 'hot key ops/s', 'zipf ops/s', 'corral ÷ it (hot)', 'corral ÷ it (zipf)', 'call measured'],
      rows,
      notes: [
        `${ITERATIONS.toLocaleString('en-US')} sequential awaited calls per round, ${WARMUP_ROUNDS} warm-up + ${ROUNDS} measured rounds, ` +
          `interleaved; zipf: s=${ZIPF_EXPONENT} over ${KEY_COUNT.toLocaleString('en-US')} warm keys. ` +
          `A ratio above 1× means Corral is faster.`,
        misses.length === 0
          ? 'Every measured call was a hit (no creator ran during the measured rounds).'
          : `WARNING: creators ran during measurement: ${misses.map((m) => `${m.label} ${m.creatorCallsMeasured}`).join(', ')}`,
      ],
    }
    const telemetryTable: Table = {
      title: 'Hit path: Corral telemetry on vs off',
      header: ['workload', 'telemetry on ops/s', 'telemetry off ops/s', 'on ÷ off', 'overhead (goal ≤ 10%)'],
      rows: telemetry.map((t) => [
        t.workload,
        formatRate(t.on),
        formatRate(t.off),
        formatRatio(t.ratio),
        `${(t.overhead * 100).toFixed(1)}%`,
      ]),
      notes: [
        'On = the default: Prometheus metrics + hot-key tracking + OpenTelemetry API without an SDK registered. ' +
          'Off = createRegion({ telemetry: false }).',
      ],
    }
    const channel = workloads.map((workload) => {
      const unsubscribed = opsOf(workload, corral.id)
      const subscribed = opsOf(workload, corralChannelSubscribed.id)
      return { workload: workload.workload, unsubscribed, subscribed, ratio: subscribed / unsubscribed }
    })
    const channelTable: Table = {
      title: 'Hit path: a diagnostics_channel subscriber on corral:getOrCreate',
      header: ['workload', 'no subscriber ops/s', 'subscribed ops/s', 'subscribed ÷ none'],
      rows: channel.map((c) => [
        c.workload,
        formatRate(c.unsubscribed),
        formatRate(c.subscribed),
        formatRatio(c.ratio),
      ]),
      notes: [
        'No subscriber = the plain corral (telemetry on) row: every getOrCreate checks its channel, which has no ' +
          'subscriber. Subscribed = a do-nothing subscriber on start, end, asyncStart, asyncEnd and error, held for ' +
          "that subject's own phase, measured after the interleaved rounds of the others.",
      ],
    }
    return {
      tables: [main, telemetryTable, channelTable],
      data: {
        iterationsPerRound: ITERATIONS,
        warmupRounds: WARMUP_ROUNDS,
        rounds: ROUNDS,
        keyCount: KEY_COUNT,
        zipfExponent: ZIPF_EXPONENT,
        floor: plainMap.id,
        workloads,
        corralRatios: Object.fromEntries(
          workloads.map((workload) => [
            workload.workload,
            Object.fromEntries(
              workload.results.map((result) => [result.id, opsOf(workload, corral.id) / result.opsPerSecond]),
            ),
          ]),
        ),
        telemetry,
        channel,
      },
    }
  },
}
