/**
 * Case 7 — hot keys: what the hot-key tracker costs a hit, and how exact its counts are, against the tracker it
 * replaced (bench/lib/legacy-hot-keys.ts: the first 1000 hits of each second exact, then 1 in 32).
 *
 * How it is measured, and why:
 * - Cost of `hit(key)` per call, at a given rate: every 10 ms the tracker gets that slot's hits as one burst in a
 *   tight loop, and only the bursts are timed, so the per-second budgets and the rate adaptation see the rate a
 *   region serving that load would give them. "Saturated" is back-to-back bursts with only a turn of the event
 *   loop between them (the rate a micro-benchmark sees, tens of millions a second). A no-op tracker gives the
 *   loop's own cost. Each tracker runs its own compiled copy of the loop (a shared one would go megamorphic) and
 *   the trackers take turns slot by slot, so noise on this shared machine spreads over all of them.
 * - Cost in the region: `region.getOrCreate` on warm keys of a memory region, sequential awaited calls, with
 *   telemetry on, on without hot keys, and off, timed in CPU time (a shared machine's other load is not charged).
 *   "Sustained": chunks of 10k calls, the regions taking turns. "After a quiet second": rounds of 100k calls, each
 *   after the regions' injected clock has skipped two idle seconds, so the tracker spends its whole per-second
 *   exact budget inside every round (the `hit` case's pattern, where other libraries run between Corral's rounds).
 * - Accuracy: the trackers are fed the same streams with an injected clock (and the legacy one an injected tick), so
 *   the figures do not depend on the machine's speed: (1) 10,000-request Zipf bursts within one second after a
 *   quiet period, 20 streams; (2) a whole 60 s window of Zipf hits mixed 1:1 with one-off keys (misses, as a
 *   region records them) at a moderate and at a high rate. Against the exact counts: precision@10 (share of the
 *   true top 10 among the reported top 10), whether the reported top 10 is in the true order, the relative count
 *   error of the true top 10 (max and mean), and how many counts lie within their published `error`.
 */
import { HotKeyTracker, RegionRegistry, createRegion, type CacheRegion } from '@corral/core'
import type { BenchCase } from '../lib/case.js'
import { LegacyHotKeyTracker } from '../lib/legacy-hot-keys.js'
import { collectGarbage, median, seededRandom, sleep, zipfSequence } from '../lib/stats.js'
import { formatRate, type Table } from '../lib/table.js'

const KEY_COUNT = 10_000
const ZIPF_EXPONENT = 1.0
const SEQUENCE_LENGTH = 1 << 20

// ------------------------------------------------------------------------------------------ cost per hit() call

interface HitTracker {
  hit(key: string): void
}

type HitLoop = (tracker: HitTracker, keys: readonly string[], from: number, count: number) => void

/** A fresh copy of the measured loop per tracker, so each call site stays monomorphic. */
function compileHitLoop(): HitLoop {
  return new Function(
    'tracker',
    'keys',
    'from',
    'count',
    'const mask = keys.length - 1; for (let i = 0; i < count; i++) tracker.hit(keys[(from + i) & mask])',
  ) as HitLoop
}

interface CostSubject {
  label: string
  tracker: HitTracker
  loop: HitLoop
  busyMs: number
  hits: number
  position: number
}

const SLOT_MS = 10
/** Per rate: slots fed before the measurement (lets the rate adaptation settle), then slots measured. */
const SETTLE_SLOTS = 100
const MEASURED_SLOTS = 100
const SATURATED_BURST = 200_000
const SATURATED_BURSTS = 30

function costSubjects(): CostSubject[] {
  const subject = (label: string, tracker: HitTracker): CostSubject => ({
    label,
    tracker,
    loop: compileHitLoop(),
    busyMs: 0,
    hits: 0,
    position: 0,
  })
  return [
    subject('legacy (1000/s exact, then 1 in 32)', new LegacyHotKeyTracker()),
    subject('new (adaptive, unbiased)', new HotKeyTracker()),
    subject('no tracker (loop only)', { hit() {} }),
  ]
}

function runBurst(subject: CostSubject, keys: readonly string[], count: number): void {
  const started = performance.now()
  subject.loop(subject.tracker, keys, subject.position, count)
  subject.busyMs += performance.now() - started
  subject.hits += count
  subject.position = (subject.position + count) & (keys.length - 1)
}

/** ns per hit() call for each tracker at `rate` hits/s (Infinity: saturated). */
async function hitCost(keys: readonly string[], rate: number): Promise<number[]> {
  const subjects = costSubjects()
  const saturated = !Number.isFinite(rate)
  const perSlot = saturated ? SATURATED_BURST : Math.round((rate * SLOT_MS) / 1000)
  const settle = saturated ? 5 : SETTLE_SLOTS
  const slots = settle + (saturated ? SATURATED_BURSTS : MEASURED_SLOTS)
  for (let slot = 0; slot < slots; slot++) {
    if (slot === settle) for (const subject of subjects) subject.busyMs = subject.hits = 0
    const slotStart = performance.now()
    for (let i = 0; i < subjects.length; i++) runBurst(subjects[(i + slot) % subjects.length]!, keys, perSlot)
    if (saturated) await new Promise<void>((resolve) => setImmediate(resolve))
    else await sleep(Math.max(0, SLOT_MS - (performance.now() - slotStart)))
  }
  return subjects.map((subject) => (subject.busyMs * 1e6) / subject.hits)
}

// ------------------------------------------------------------------------------------------ cost in the region

const REGION_CHUNK = 10_000
const SUSTAINED_CHUNKS = 80
const QUIET_ROUND = 100_000
const QUIET_ROUNDS = 8
const REGION_REPETITIONS = 3

type RegionPass = (region: CacheRegion, keys: readonly string[], from: number, count: number) => Promise<void>
const AsyncFunction = (async () => {}).constructor as new (...parameters: string[]) => RegionPass

interface RegionSubject {
  label: string
  region: CacheRegion
  pass: RegionPass
  calls: number
  cpuMicros: number
}

/** A simulated clock for the regions of the "after a quiet second" pattern: it jumps over the idle seconds. */
interface FakeClock {
  now: number
}

async function regionSubjects(keys: readonly string[], clock: FakeClock | undefined): Promise<RegionSubject[]> {
  const variants: Array<[string, Parameters<typeof createRegion>[0]]> = [
    ['telemetry on (default)', {}],
    ['telemetry on, hotKeys: false', { telemetry: { hotKeys: false } }],
    ['telemetry off', { telemetry: false }],
  ]
  const subjects: RegionSubject[] = []
  for (const [label, options] of variants) {
    const region = createRegion({
      name: 'bench',
      registry: new RegionRegistry(),
      ...(clock ? { clock: () => clock.now } : {}),
      ...options,
    }).configure('memory', { expirationTime: 3600, arguments: { maxEntries: KEY_COUNT * 2 } })
    for (const key of new Set(keys)) await region.getOrCreate(key, async () => ({ key }))
    const pass = new AsyncFunction(
      'region',
      'keys',
      'from',
      'count',
      'const mask = keys.length - 1; for (let i = 0; i < count; i++) ' +
        'await region.getOrCreate(keys[(from + i) & mask], () => { throw new Error("miss") })',
    )
    subjects.push({ label, region, pass, calls: 0, cpuMicros: 0 })
  }
  return subjects
}

/** CPU microseconds (user + system) of this process: a descheduled process on a shared machine is not charged. */
function cpuMicros(): number {
  const usage = process.cpuUsage()
  return usage.user + usage.system
}

async function timedPass(subject: RegionSubject, keys: readonly string[], from: number, count: number) {
  const started = cpuMicros()
  await subject.pass(subject.region, keys, from, count)
  subject.cpuMicros += cpuMicros() - started
  subject.calls += count
}

/**
 * Calls per CPU-second of each variant, over one repetition. Sustained: chunks of 10k calls, the three regions
 * taking turns, with the regions' real clocks. After a quiet second: rounds of 100k calls per region, each after
 * the regions' (simulated) clock has moved on by two idle seconds, so the tracker starts every round exact and
 * spends its whole per-second budget in it.
 */
async function regionThroughput(keys: readonly string[], quiet: boolean): Promise<number[]> {
  const clock: FakeClock | undefined = quiet ? { now: Date.now() } : undefined
  const subjects = await regionSubjects(keys, clock)
  const rounds = quiet ? QUIET_ROUNDS : SUSTAINED_CHUNKS
  const perRound = quiet ? QUIET_ROUND : REGION_CHUNK
  for (let round = -2; round < rounds; round++) {
    if (round === 0) for (const subject of subjects) subject.calls = subject.cpuMicros = 0
    if (clock) clock.now += 2050
    for (let i = 0; i < subjects.length; i++) {
      const subject = subjects[(i + round + 2) % subjects.length]!
      await timedPass(subject, keys, (round + 2) * perRound, perRound)
    }
  }
  await Promise.all(subjects.map((subject) => subject.region.close()))
  return subjects.map((subject) => subject.calls / (subject.cpuMicros / 1e6))
}

// ------------------------------------------------------------------------------------------ accuracy

interface ReportedKey {
  key: string
  count: number
  error?: number
}

interface AccuracyTracker {
  hit(key: string): void
  record(key: string, result: 'hit' | 'miss'): void
  top(limit?: number): ReportedKey[]
}

interface Accuracy {
  precision: number
  inOrder: boolean
  maxRelativeError: number
  meanRelativeError: number
  /** True top-10 keys whose reported count is within its `error` (undefined for a tracker without one). */
  withinBound: number | undefined
}

/** Compares a tracker's top 10 with the exact counts. */
function accuracyOf(tracker: AccuracyTracker, exact: Map<string, number>): Accuracy {
  const truth = [...exact.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, 10)
  const reported = tracker.top(10)
  const all = new Map(tracker.top(Number.POSITIVE_INFINITY).map((k) => [k.key, k]))
  const truthKeys = new Set(truth.map(([key]) => key))
  const precision = reported.filter((k) => truthKeys.has(k.key)).length / truth.length
  // In order: the reported keys' true counts are the true top 10's counts, position by position (ties may swap).
  const inOrder = reported.length === truth.length && reported.every((k, i) => exact.get(k.key) === truth[i]![1])
  const relativeErrors = truth.map(([key, count]) => Math.abs((all.get(key)?.count ?? 0) - count) / count)
  const bounded = truth.filter(([key, count]) => {
    const k = all.get(key)
    return k !== undefined && k.error !== undefined && Math.abs(k.count - count) <= k.error
  }).length
  return {
    precision,
    inOrder,
    maxRelativeError: Math.max(...relativeErrors),
    meanRelativeError: relativeErrors.reduce((a, b) => a + b, 0) / relativeErrors.length,
    withinBound: reported[0]?.error === undefined ? undefined : bounded,
  }
}

interface Simulated {
  tracker: AccuracyTracker
  now: number
}

function simulatedTrackers(): Array<{ label: string; sim: Simulated }> {
  const legacy: Simulated = { tracker: undefined!, now: 0 }
  legacy.tracker = new LegacyHotKeyTracker({ clock: () => legacy.now, tick: () => Math.floor(legacy.now / 1000) })
  const current: Simulated = { tracker: undefined!, now: 0 }
  current.tracker = new HotKeyTracker({ clock: () => current.now })
  return [
    { label: 'legacy', sim: legacy },
    { label: 'new', sim: current },
  ]
}

const BURST_REQUESTS = 10_000
const BURST_STREAMS = 20

/** 10,000 Zipf hits spread over one second, after a quiet period; one stream per seed. */
function burstAccuracy(names: readonly string[]): Array<{ label: string; results: Accuracy[] }> {
  const out = simulatedTrackers().map(({ label }) => ({ label, results: [] as Accuracy[] }))
  for (let stream = 0; stream < BURST_STREAMS; stream++) {
    const ranks = zipfSequence(names.length, ZIPF_EXPONENT, BURST_REQUESTS, 1000 + stream)
    const exact = new Map<string, number>()
    for (const rank of ranks) exact.set(names[rank]!, (exact.get(names[rank]!) ?? 0) + 1)
    simulatedTrackers().forEach(({ sim }, t) => {
      sim.now = 3_600_000 // an hour in: the previous seconds were quiet
      for (let i = 0; i < ranks.length; i++) {
        sim.now = 3_600_000 + (i * 1000) / ranks.length
        sim.tracker.hit(names[ranks[i]!]!)
      }
      out[t]!.results.push(accuracyOf(sim.tracker, exact))
    })
  }
  return out
}

const WINDOW_SECONDS = 60
const MIXED_KEY_COUNT = 100_000

/**
 * A whole window at `rate` requests/s: half Zipf hits over MIXED_KEY_COUNT keys, half one-off keys (misses).
 * Returns each tracker's accuracy over the window.
 */
function mixedAccuracy(rate: number, seed: number): Array<{ label: string; result: Accuracy }> {
  const names = Array.from({ length: MIXED_KEY_COUNT }, (_, i) => `product:${i}:details`)
  const ranks = zipfSequence(MIXED_KEY_COUNT, ZIPF_EXPONENT, SEQUENCE_LENGTH, seed)
  const random = seededRandom(seed)
  const trackers = simulatedTrackers()
  const counts = new Int32Array(MIXED_KEY_COUNT)
  const total = rate * WINDOW_SECONDS
  let zipfAt = 0
  for (let i = 0; i < total; i++) {
    const now = (i * 1000) / rate
    if (random() < 0.5) {
      const rank = ranks[zipfAt++ & (SEQUENCE_LENGTH - 1)]!
      counts[rank]!++
      const key = names[rank]!
      for (const { sim } of trackers) {
        sim.now = now
        sim.tracker.hit(key)
      }
    } else {
      const key = `once:${seed}:${i}`
      for (const { sim } of trackers) {
        sim.now = now
        sim.tracker.record(key, 'miss')
      }
    }
  }
  const exact = new Map<string, number>()
  counts.forEach((count, rank) => count > 0 && exact.set(names[rank]!, count))
  return trackers.map(({ label, sim }) => ({ label, result: accuracyOf(sim.tracker, exact) }))
}

// ------------------------------------------------------------------------------------------ the case

const percent = (value: number) => `${(value * 100).toFixed(1)}%`
const ns = (value: number) => `${value.toFixed(1)} ns`

export const hotKeysCase: BenchCase = {
  id: 'hot-keys',
  title: 'Hot keys: cost per hit and accuracy',
  description:
    'the hot-key tracker against the one it replaced (1000 exact hits a second, then 1 in 32): ns per hit() at ' +
    'several rates, the region hit path with and without it, and top-10 precision, order and count error on ' +
    '10,000-request Zipf bursts and on a window of Zipf mixed with one-off keys',
  needsRedis: false,
  async run({ log }) {
    const names = Array.from({ length: KEY_COUNT }, (_, i) => `user:${i}`)
    const hotSequence = Array.from({ length: SEQUENCE_LENGTH }, () => names[0]!)
    const zipfKeys = Array.from(zipfSequence(KEY_COUNT, ZIPF_EXPONENT, SEQUENCE_LENGTH, 42), (rank) => names[rank]!)

    const rates = [10_000, 100_000, 1_000_000, Number.POSITIVE_INFINITY]
    const costRows: string[][] = []
    const costData: Array<{ workload: string; rate: number | 'saturated'; nsPerHit: Record<string, number> }> = []
    const labels = costSubjects().map((subject) => subject.label)
    for (const [workload, keys] of [
      ['single hot key', hotSequence],
      ['zipf', zipfKeys],
    ] as const) {
      for (const rate of rates) {
        log(`  hit() cost: ${workload} at ${Number.isFinite(rate) ? `${formatRate(rate)} hits/s` : 'saturation'}`)
        const costs = await hitCost(keys, rate)
        const [legacy, current, floor] = costs as [number, number, number]
        costRows.push([
          workload,
          Number.isFinite(rate) ? `${formatRate(rate)}/s` : 'saturated',
          ns(legacy),
          ns(current),
          ns(floor),
          ns(legacy - floor),
          ns(current - floor),
        ])
        costData.push({
          workload,
          rate: Number.isFinite(rate) ? rate : 'saturated',
          nsPerHit: Object.fromEntries(labels.map((label, i) => [label, costs[i]!])),
        })
      }
    }

    const regionRows: string[][] = []
    const regionData: unknown[] = []
    const regionLabels = ['telemetry on (default)', 'telemetry on, hotKeys: false', 'telemetry off']
    for (const [workload, keys] of [
      ['single hot key', hotSequence],
      ['zipf', zipfKeys],
    ] as const) {
      for (const quiet of [false, true]) {
        log(`  region: ${workload}, ${quiet ? 'after a quiet second' : 'sustained'}`)
        const repetitions: number[][] = []
        for (let r = 0; r < REGION_REPETITIONS; r++) {
          collectGarbage()
          repetitions.push(await regionThroughput(keys, quiet))
        }
        const ops = regionLabels.map((_, v) => median(repetitions.map((rep) => rep[v]!)))
        const [on, noHotKeys, off] = ops as [number, number, number]
        regionLabels.forEach((label, v) => {
          const all = repetitions.map((rep) => rep[v]!)
          regionRows.push([
            workload,
            quiet ? 'after a quiet second' : 'sustained',
            label,
            formatRate(ops[v]!),
            `${formatRate(Math.min(...all))}–${formatRate(Math.max(...all))}`,
            percent(1 - ops[v]! / off),
            v === 0 ? ns(1e9 / on - 1e9 / noHotKeys) : '',
          ])
        })
        regionData.push({ workload, quiet, labels: regionLabels, repetitions })
      }
    }

    log('  accuracy: bursts')
    const bursts = burstAccuracy(names)
    log('  accuracy: a window of Zipf + one-off keys, 20k requests/s')
    const moderate = mixedAccuracy(20_000, 7)
    log('  accuracy: a window of Zipf + one-off keys, 100k requests/s')
    const busy = mixedAccuracy(100_000, 11)

    const accuracyRows: string[][] = []
    for (const { label, results } of bursts) {
      const within = results.every((r) => r.withinBound !== undefined)
        ? `${results.reduce((sum, r) => sum + r.withinBound!, 0)} / ${results.length * 10}`
        : 'n/a'
      accuracyRows.push([
        `10,000-request Zipf burst in 1 s (${BURST_STREAMS} streams)`,
        label,
        `${Math.min(...results.map((r) => r.precision)).toFixed(2)} (min)`,
        `${results.filter((r) => r.inOrder).length} / ${results.length}`,
        percent(Math.max(...results.map((r) => r.maxRelativeError))),
        percent(results.reduce((sum, r) => sum + r.meanRelativeError, 0) / results.length),
        within,
      ])
    }
    for (const [workload, results] of [
      ['60 s of Zipf + one-off keys at 20k req/s', moderate],
      ['60 s of Zipf + one-off keys at 100k req/s', busy],
    ] as const) {
      for (const { label, result } of results) {
        accuracyRows.push([
          workload,
          label,
          result.precision.toFixed(2),
          result.inOrder ? 'yes' : 'no',
          percent(result.maxRelativeError),
          percent(result.meanRelativeError),
          result.withinBound === undefined ? 'n/a' : `${result.withinBound} / 10`,
        ])
      }
    }

    const costTable: Table = {
      title: 'hit(key): ns per call, legacy against new',
      header: ['workload', 'rate', 'legacy', 'new', 'loop only', 'legacy − loop', 'new − loop'],
      rows: costRows,
      notes: [
        `Each 10 ms slot's hits run as one timed burst; ${SETTLE_SLOTS} slots to settle, then ${MEASURED_SLOTS} ` +
          `measured; saturated: ${SATURATED_BURSTS} back-to-back bursts of ${formatRate(SATURATED_BURST)}. Zipf: ` +
          `s=${ZIPF_EXPONENT} over ${KEY_COUNT.toLocaleString('en-US')} keys. The new tracker records every hit up ` +
          'to 10,000 a second (the legacy one 1000, then reads the clock on each of its 1-in-32 samples), so below ' +
          'a few hundred thousand hits a second it can do more work per hit; past that it samples at a rate that ' +
          'adapts, and a hit that is not sampled costs one decrement.',
      ],
    }
    const regionTable: Table = {
      title: 'Region hit path (memory store): region.getOrCreate with and without the tracker',
      header: ['workload', 'pattern', 'region', 'calls per CPU-s', 'min–max', 'overhead vs off', 'hot keys per call'],
      rows: regionRows,
      notes: [
        `Sequential awaited calls on warm keys of a memory region, timed in CPU time of the process (a shared ` +
          `machine's other load is not charged); median of ${REGION_REPETITIONS} repetitions, min–max. Sustained: ` +
          `${SUSTAINED_CHUNKS} chunks of ${formatRate(REGION_CHUNK)} calls per region, the regions taking turns. ` +
          `After a quiet second: ${QUIET_ROUNDS} rounds of ${formatRate(QUIET_ROUND)} calls per region, each after ` +
          "the regions' injected clock has skipped two idle seconds, so the tracker spends its whole exact budget " +
          'in every round (as in the `hit` case, where other libraries run between Corral\'s rounds). "Hot keys per ' +
          'call": ns per call of telemetry on minus telemetry on with hotKeys: false.',
      ],
    }
    const accuracyTable: Table = {
      title: 'Hot-key accuracy: the true top 10 against what the tracker reports',
      header: [
        'workload',
        'tracker',
        'precision@10',
        'in true order',
        'max count error',
        'mean count error',
        'within error',
      ],
      rows: accuracyRows,
      notes: [
        'Count error: |reported − true| / true over the true top 10 (a key not reported counts as 100%). ' +
          '"Within error": true top-10 counts that lie within the published `error` (the legacy tracker has none). ' +
          'Simulated time; the one-off keys are recorded as misses, the Zipf keys as hits through hit().',
      ],
    }
    return {
      tables: [costTable, regionTable, accuracyTable],
      data: { cost: costData, region: regionData, accuracy: { bursts, moderate, busy } },
    }
  },
}
