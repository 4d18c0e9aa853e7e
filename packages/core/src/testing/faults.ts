/**
 * The fault suite: what a distributed backend's users see on its bad days, registered as Vitest tests by
 * `describeFaultSuite(name, options)`. Redis and memcached run it (and so can a backend of yours, through
 * `@corral/core/testing`).
 *
 * Four worker processes (`stampede-worker`) keep a key space under continuous load — `getOrCreate` with short
 * creators, `get` and `set` — while one fault is injected per scenario:
 *
 * - no fault (the reference: the invariants hold under load alone);
 * - the server killed (SIGKILL) and restarted, and the server frozen (SIGSTOP) then thawed, when the backend has
 *   a server to control;
 * - a lock holder killed (SIGKILL) while it holds the locks of keys the others need;
 * - a lock holder frozen (SIGSTOP) past its lock timeout, a newer value `set()` meanwhile, then thawed: the value it
 *   made before the freeze must not overwrite the newer one;
 * - creators that hang (never settle, ignore their signal) and creators that throw (an Error, `undefined`, a
 *   string, an object...);
 * - corrupt bytes written under keys in use, as a foreign program would.
 *
 * For each scenario it prints one `[corral-measure]` line and asserts: no process crashed, no unhandled rejection,
 * no caller stranded (every call settled within `callBoundMs`: each worker tracks its calls in flight), no wrong
 * value (another key's, a malformed one), no version going backwards (a value read after a newer one was read),
 * no `LockTimeoutError` (a live holder or a takeover was always there to wait for), no other unexpected error, and
 * that hits resumed after the fault ended (the time it took is the scenario's figure).
 */
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { garbageBytes, type ServerControl } from './conformance.js'
import { preciseNow, type LoadReport, type VersionedValue } from './fault-load.js'
import { reportFigure } from './measure.js'
import { startWorkers, Worker } from './workers.js'

/** A server of the suite's own (the outage scenarios kill and freeze it), as the workers reach it. */
export interface FaultSuiteServer {
  /** The backend arguments the workers' regions are configured with (the suite adds `lockTimeout`). */
  readonly arguments: Record<string, unknown>
  /**
   * Writes `bytes` under a key as a region passes it to the backend (after the region's mangler; the backend's own
   * prefix and mangling are this function's business), as a foreign program would.
   */
  writeRaw(storeKey: string, bytes: Buffer): Promise<void>
  /** The server's process, for the outage scenarios (SIGKILL + restart, SIGSTOP + SIGCONT). */
  readonly control?: ServerControl
  /** Stops the server for good, after the suite. */
  close(): Promise<void>
}

export interface FaultSuiteOptions {
  /** The backend's registered name (`'redis'`, `'memcached'`, or yours: see `workerSetup`). */
  backend: string
  /** Starts the server, once, before the scenarios. */
  startServer: () => Promise<FaultSuiteServer>
  /**
   * Whether the backend has a server that can go down, which the outage scenarios kill and freeze through
   * `FaultSuiteServer.control`. Default true; false for a backend without one (files on a local disk).
   */
  outages?: boolean
  /** A module every worker imports first, e.g. one that calls `registerBackend` for `backend`. */
  workerSetup?: string | URL
  /** Worker processes under load. Default 4. */
  processes?: number
  /** The backend's `lockTimeout` in seconds. Default 1. */
  lockTimeout?: number
  /** How long an outage lasts (the server down or frozen). Default 1500 ms. */
  outageMs?: number
  /** The bound within which every call must settle. Default 4 × lockTimeout + 2 s. */
  callBoundMs?: number
}

/** The figure of one scenario. */
export interface ScenarioFigures {
  calls: number
  crashes: number
  unhandled: number
  stranded: number
  maxLatencyMs: number
  wrongValues: number
  versionRegressions: number
  lateOverwrites: number
  lockTimeouts: number
  expectedErrors: number
  unexpectedErrors: number
  /** times a worker's circuit breaker opened */
  circuitOpens: number
  hitsResumeMs: number
}

/** What a fault did, for the analysis. */
interface FaultOutcome {
  /** when the fault ended (the server back, the holder killed, the injection stopped), epoch ms */
  endedAt: number
  /** the keys the fault aimed at: hits resume is measured on them, from `endedAt` (default: every key's rate) */
  focus?: number[]
  /** values that must never be read after `after` (a late holder's) */
  mustNotReappear?: { after: number; pid: number; versions: Map<number, number> }
  /** extra processes of the scenario (holders) and whether their death was intended */
  extra?: Array<{ worker: Worker; killed: boolean }>
}

interface ScenarioContext {
  region: string
  keys: string[]
  workers: readonly Worker[]
  server: FaultSuiteServer
  configure(targets: readonly Worker[]): Promise<void>
}

const KEYS = 12
const LOOPS = 4
const PAUSE_MS = 4
const CREATOR_MS = 20
const GET_SHARE = 0.25
const SET_SHARE = 0.03
/** Short enough that keys expire and regenerate all the time, so the lock is always in use. */
const EXPIRATION_SECONDS = 0.25
const WARMUP_MS = 1200
const RECOVERY_MS = 3000
const INJECTION_MS = 2000
/** Two calls of different processes are ordered only if one ended this long before the other began. */
const ORDER_MARGIN_MS = 2
/** A rate of hits this share of the rate before the fault counts as hits resumed. */
const RESUMED_SHARE = 0.5
const RATE_WINDOW_MS = 200

const GARBAGE = garbageBytes(Date.now())

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

export function describeFaultSuite(name: string, options: FaultSuiteOptions): void {
  const processes = options.processes ?? 4
  const lockTimeoutMs = (options.lockTimeout ?? 1) * 1000
  const outageMs = options.outageMs ?? 1500
  const boundMs = options.callBoundMs ?? 4 * lockTimeoutMs + 2000
  const suiteId = randomUUID().slice(0, 8)
  let server: FaultSuiteServer
  let workers: Worker[] = []

  const workerArguments = () => ({ ...server.arguments, lockTimeout: lockTimeoutMs / 1000 })

  describe(`${name}: fault suite, ${processes} processes under load`, () => {
    beforeAll(async () => {
      server = await options.startServer()
      workers = await startWorkers(processes, options.workerSetup)
    })

    afterAll(async () => {
      await Promise.all(workers.map((w) => w.stop()))
      await server?.close()
    })

    /**
     * Registers one scenario: load starts, `fault` runs after a warm-up, load goes on for a while after it, then
     * every call is accounted for.
     */
    const scenario = (
      title: string,
      fault: (context: ScenarioContext) => Promise<FaultOutcome>,
      expected: { errors?: string[]; check?: (reports: LoadReport[], figures: ScenarioFigures) => void } = {},
    ) =>
      it(
        title,
        async () => {
          // A worker lost in an earlier scenario is replaced, so each scenario starts with the full set.
          for (let i = 0; i < workers.length; i++) {
            if (workers[i]!.crashed) workers[i] = await Worker.start(options.workerSetup)
          }
          const slug = title.replace(/[^a-z0-9]+/gi, '-').slice(0, 40)
          const region = `faults-${suiteId}-${slug}`
          const keys = Array.from({ length: KEYS }, (_, i) => `${slug}:${i}`)
          const configure = async (targets: readonly Worker[]) => {
            await Promise.all(
              targets.map((w) =>
                w.call('configure', {
                  region,
                  backend: options.backend,
                  arguments: workerArguments(),
                  expirationTime: EXPIRATION_SECONDS,
                  options: { failSafe: { maxStaleAge: '30s', throttle: '1s' } },
                }),
              ),
            )
          }
          const unhandledBefore = workers.map((w) => w.unhandled.length)
          const unhandled: unknown[] = []
          const onUnhandled = (reason: unknown) => unhandled.push(reason)
          process.on('unhandledRejection', onUnhandled)
          let outcome: FaultOutcome | undefined
          let reports: Array<LoadReport | undefined> = []
          let loadStartedAt = 0
          let faultStartedAt = 0
          try {
            await configure(workers)
            loadStartedAt = preciseNow()
            await Promise.all(
              workers.map((w) =>
                w.call('loadStart', {
                  region,
                  keys,
                  loops: LOOPS,
                  pauseMs: PAUSE_MS,
                  creatorMs: CREATOR_MS,
                  getShare: GET_SHARE,
                  setShare: SET_SHARE,
                }),
              ),
            )
            await sleep(WARMUP_MS)
            faultStartedAt = preciseNow()
            outcome = await fault({ region, keys, workers, server, configure })
            await sleep(RECOVERY_MS)
          } finally {
            reports = await Promise.all(
              workers.map((w) =>
                w.call<LoadReport>('loadStop', { region, boundMs }, boundMs + 15_000).catch(() => undefined),
              ),
            )
            for (const extra of outcome?.extra ?? []) {
              if (!extra.killed) await extra.worker.stop()
            }
            process.off('unhandledRejection', onUnhandled)
          }

          const happened = outcome!
          const crashes =
            workers.filter((w, i) => w.crashed || reports[i] === undefined).length +
            (happened.extra ?? []).filter((e) => !e.killed && e.worker.crashed).length
          const workerUnhandled =
            workers.reduce((sum, w, i) => sum + w.unhandled.length - unhandledBefore[i]!, 0) +
            (happened.extra ?? []).reduce((sum, e) => sum + e.worker.unhandled.length, 0)
          const delivered = reports.filter((r): r is LoadReport => r !== undefined)
          // Found once: counted in the figures, and the first few described beside them.
          const regressions = versionRegressions(readsOf(delivered))
          const figures = analyze(delivered, {
            regressions,
            boundMs,
            expectedErrors: new Set(expected.errors ?? []),
            outcome: happened,
            loadStartedAt,
            faultStartedAt,
          })
          figures.crashes = crashes
          figures.unhandled = workerUnhandled + unhandled.length
          reportFigure(`${name} fault: ${title}`, {
            ...figures,
            hitsResumeMs: Number.isFinite(figures.hitsResumeMs) ? figures.hitsResumeMs : 'never',
          })
          const problems = describeProblems(delivered, regressions, happened, boundMs)
          if (problems.length > 0) console.log(`[corral-faults] ${name} / ${title}:\n  ${problems.join('\n  ')}`)

          // Soft: a scenario lists every invariant it broke, not only the first.
          expect.soft(figures.crashes, 'processes crashed').toBe(0)
          expect.soft(figures.unhandled, 'unhandled rejections').toBe(0)
          expect.soft(figures.stranded, `calls that did not settle within ${boundMs} ms`).toBe(0)
          expect.soft(figures.wrongValues, 'wrong values').toBe(0)
          expect.soft(figures.versionRegressions, 'versions read going backwards').toBe(0)
          expect.soft(figures.lateOverwrites, 'a late holder overwrote a newer value').toBe(0)
          expect.soft(figures.lockTimeouts, 'LockTimeoutError while a holder was alive or taken over').toBe(0)
          expect.soft(figures.unexpectedErrors, 'unexpected errors').toBe(0)
          expect.soft(figures.hitsResumeMs, 'hits did not resume after the fault').toBeLessThan(RECOVERY_MS)
          expected.check?.(delivered, figures)
        },
        WARMUP_MS + RECOVERY_MS + 2 * boundMs + 60_000,
      )

    scenario('steady load, no fault', async () => {
      await sleep(INJECTION_MS)
      return { endedAt: preciseNow() }
    })

    if (options.outages !== false) {
      const controlOf = (server: FaultSuiteServer) => {
        if (!server.control)
          throw new Error(`${name}: the outage scenarios need the server's control (or outages: false)`)
        return server.control
      }

      scenario('the server killed (SIGKILL) and restarted', async ({ server }) => {
        const control = controlOf(server)
        await control.kill()
        await sleep(outageMs)
        await control.restart()
        return { endedAt: preciseNow() }
      })

      scenario('the server frozen (SIGSTOP), then thawed', async ({ server }) => {
        const control = controlOf(server)
        await control.pause()
        try {
          await sleep(outageMs)
        } finally {
          await control.resume()
        }
        return { endedAt: preciseNow() }
      })
    }

    scenario('a lock holder killed (SIGKILL) while others need its keys', async ({ region, keys, configure }) => {
      const holder = await Worker.start(options.workerSetup)
      await configure([holder])
      const held = [0, 1, 2]
      await holder.call('holdKeys', { region, keys: held.map((i) => keys[i]), mode: 'hang' })
      // The others now wait on (or serve stale around) these locks; the holder dies holding them.
      await sleep(200)
      await holder.kill('SIGKILL')
      return { endedAt: preciseNow(), focus: held, extra: [{ worker: holder, killed: true }] }
    })

    scenario(
      'a lock holder frozen (SIGSTOP) past its lock timeout while set() writes a newer value, then thawed',
      async ({ region, keys, workers, configure }) => {
        const holder = await Worker.start(options.workerSetup)
        await configure([holder])
        const held = [0, 1, 2]
        // The holder makes its values at once, then returns them 500 ms later: frozen in between.
        const { held: values } = await holder.call<{ held: VersionedValue[] }>('holdKeys', {
          region,
          keys: held.map((i) => keys[i]),
          mode: 'late',
          creatorMs: 500,
        })
        holder.pause()
        const frozenAt = preciseNow()
        try {
          // Its locks run out and the others take the keys over; then someone writes a newer value.
          await sleep(lockTimeoutMs + 500)
          for (const i of held) await workers[0]!.call('setVersioned', { region, key: keys[i] })
          await sleep(300)
        } finally {
          holder.resume()
        }
        const resumedAt = preciseNow()
        // The thawed holder finishes its creators at once and tries to store what it made before the freeze.
        await Promise.all(held.map(() => holder.waitFor('settled', 10_000)))
        return {
          endedAt: frozenAt,
          focus: held,
          mustNotReappear: {
            after: resumedAt,
            pid: holder.pid,
            versions: new Map(values.map((v) => [keys.indexOf(v.key), v.version])),
          },
          extra: [{ worker: holder, killed: false }],
        }
      },
    )

    scenario(
      'creators that hang (never settle, ignore their signal)',
      async ({ region, workers }) => {
        await Promise.all(workers.map((w) => w.call('inject', { region, hang: 0.2 })))
        await sleep(INJECTION_MS)
        await Promise.all(workers.map((w) => w.call('inject', { region })))
        return { endedAt: preciseNow() }
      },
      { errors: ['E_CREATOR_TIMEOUT'] },
    )

    scenario(
      'creators that throw (an Error, undefined, a string, an object, null)',
      async ({ region, workers }) => {
        await Promise.all(workers.map((w) => w.call('inject', { region, throw: 0.5 })))
        await sleep(INJECTION_MS)
        await Promise.all(workers.map((w) => w.call('inject', { region })))
        return { endedAt: preciseNow() }
      },
      {
        errors: ['injected'],
        check: (reports) => {
          expect
            .soft(
              reports.reduce((sum, r) => sum + r.thrown, 0),
              'creators that threw',
            )
            .toBeGreaterThan(0)
          // Every throw is a failed regeneration, whatever was thrown (`throw undefined` included).
          for (const report of reports) {
            expect
              .soft(report.regenerationErrors, `worker ${report.pid}: regenerations counted as errors`)
              .toBe(report.thrown)
          }
        },
      },
    )

    scenario('corrupt entries written under keys in use', async ({ keys, server }) => {
      const until = performance.now() + INJECTION_MS
      let n = 0
      while (performance.now() < until) {
        const key = keys[n % keys.length]!
        await server.writeRaw(key, GARBAGE[n % GARBAGE.length]!)
        n++
        await sleep(20)
      }
      return { endedAt: preciseNow() }
    })
  })
}

interface AnalysisContext {
  /** `versionRegressions(readsOf(reports))` */
  regressions: readonly Regression[]
  boundMs: number
  expectedErrors: ReadonlySet<string>
  outcome: FaultOutcome
  loadStartedAt: number
  faultStartedAt: number
}

/** Every `get()` that answered a value, with the return time of the `set()` call that wrote it, if one did. */
function readsOf(reports: readonly LoadReport[]): Read[] {
  const setReturns = new Map<string, number>()
  for (const report of reports) {
    for (const [op, key, , end, version, pid] of report.records) {
      if (op === 's' && version >= 0) setReturns.set(`${key} ${pid} ${version}`, end)
    }
  }
  const reads: Read[] = []
  for (const report of reports) {
    for (const [op, key, start, end, version, writer, , kind] of report.records) {
      if (op !== 'g' || version < 0) continue
      const setReturnedAt = kind === 'set' ? setReturns.get(`${key} ${writer} ${version}`) : undefined
      reads.push({ key, start, end, version, reader: report.pid, writer, kind, setReturnedAt })
    }
  }
  return reads
}

/** The figures of one scenario from every worker's report. */
function analyze(reports: readonly LoadReport[], context: AnalysisContext): ScenarioFigures {
  const { boundMs, expectedErrors, outcome } = context
  let calls = 0
  let stranded = 0
  let maxLatencyMs = 0
  let wrongValues = 0
  let lockTimeouts = 0
  let expectedCount = 0
  let unexpected = 0
  let lateOverwrites = 0
  for (const report of reports) {
    stranded += report.stranded.length
    for (const [op, key, start, end, version, pid, result] of report.records) {
      calls++
      const latency = end - start
      maxLatencyMs = Math.max(maxLatencyMs, latency)
      if (latency > boundMs) stranded++
      if (result.startsWith('wrong:')) wrongValues++
      else if (result === 'E_LOCK_TIMEOUT') lockTimeouts++
      else if (result !== '' && expectedErrors.has(result)) expectedCount++
      else if (result !== '') unexpected++
      const late = outcome.mustNotReappear
      if (op === 'g' && late && start > late.after && pid === late.pid && late.versions.get(key) === version)
        lateOverwrites++
    }
  }
  return {
    calls,
    crashes: 0,
    unhandled: 0,
    stranded,
    maxLatencyMs,
    wrongValues,
    versionRegressions: context.regressions.length,
    lateOverwrites,
    lockTimeouts,
    expectedErrors: expectedCount,
    unexpectedErrors: unexpected,
    circuitOpens: reports.reduce((sum, r) => sum + r.circuitStates.filter((s) => s === 'open').length, 0),
    hitsResumeMs: hitsResume(reports, context),
  }
}

/** A `get()` that answered a value: when it ran, in which process, and the value's version and writer. */
interface Read {
  key: number
  start: number
  end: number
  version: number
  reader?: number
  writer?: number
  kind?: string
  /** for a value `set()` wrote: when that call returned (until then the write may land at any moment) */
  setReturnedAt?: number
}

/** A read that saw an older version than `newer`, a read that had ended before it began. */
interface Regression {
  key: number
  read: Read
  newer: Read
}

/**
 * Reads that saw an older version of a key than a read that had already ended before they began: a newer value
 * was stored, and then an older one came back (a late writer overwrote it). A plain `set()` is last-writer-wins and
 * takes effect at some moment before it returns, so a value it wrote may legitimately land after a newer one for
 * as long as the call had not returned when that newer one was read: such reads are not counted.
 */
function versionRegressions(reads: readonly Read[]): Regression[] {
  const found: Regression[] = []
  const byKey = new Map<number, Read[]>()
  for (const read of reads) {
    const list = byKey.get(read.key) ?? []
    list.push(read)
    byKey.set(read.key, list)
  }
  for (const [key, list] of byKey) {
    const byEnd = [...list].sort((a, b) => a.end - b.end)
    const byStart = [...list].sort((a, b) => a.start - b.start)
    let ended = 0
    let newest: Read | undefined
    for (const read of byStart) {
      while (ended < byEnd.length && byEnd[ended]!.end + ORDER_MARGIN_MS < read.start) {
        if (newest === undefined || byEnd[ended]!.version > newest.version) newest = byEnd[ended]!
        ended++
      }
      if (newest === undefined || read.version >= newest.version) continue
      // The older value's set() was still in flight when the newer value was read: it may have landed after it.
      if (read.setReturnedAt !== undefined && read.setReturnedAt + ORDER_MARGIN_MS >= newest.start) continue
      found.push({ key, read, newer: newest })
    }
  }
  return found
}

/**
 * How long after the fault ended hits resumed: on the fault's focus keys, until each of them was hit again; else
 * until the hit rate of every process together was back to half its rate before the fault. 0 when it never
 * dropped; `Infinity` when it did not come back.
 */
function hitsResume(reports: readonly LoadReport[], context: AnalysisContext): number {
  const { outcome, loadStartedAt, faultStartedAt } = context
  const hits = reports.flatMap((r) => r.hits).sort((a, b) => a[0] - b[0])
  if (outcome.focus !== undefined) {
    let latest = 0
    for (const key of outcome.focus) {
      const first = hits.find(([at, k]) => k === key && at >= outcome.endedAt)
      if (first === undefined) return Number.POSITIVE_INFINITY
      latest = Math.max(latest, first[0] - outcome.endedAt)
    }
    return latest
  }
  const baselineFrom = loadStartedAt + 500
  const baseline =
    hits.filter(([at]) => at >= baselineFrom && at < faultStartedAt).length / Math.max(1, faultStartedAt - baselineFrom)
  const needed = Math.max(1, RESUMED_SHARE * baseline * RATE_WINDOW_MS)
  const times = hits.map(([at]) => at).filter((at) => at >= outcome.endedAt)
  // Slide a window over the hits after the fault; the first window holding enough hits is where they resumed.
  for (let first = 0, last = 0; first < times.length; first++) {
    while (last < times.length && times[last]! < times[first]! + RATE_WINDOW_MS) last++
    if (last - first >= needed) return times[first]! - outcome.endedAt
  }
  return Number.POSITIVE_INFINITY
}

/** A few lines on what went wrong, to read beside the figure. */
function describeProblems(
  reports: readonly LoadReport[],
  regressions: readonly Regression[],
  outcome: FaultOutcome,
  boundMs: number,
): string[] {
  const lines: string[] = []
  const outcomes = new Map<string, number>()
  for (const report of reports) {
    for (const s of report.stranded) lines.push(`stranded: ${s.op} ${s.key} pending for ${s.ageMs.toFixed(0)} ms`)
    for (const record of report.records) {
      const [, , start, end, , , result] = record
      if (result !== '') outcomes.set(result, (outcomes.get(result) ?? 0) + 1)
      if (end - start > boundMs) lines.push(`late: ${record[0]} key ${record[1]} took ${(end - start).toFixed(0)} ms`)
    }
  }
  for (const [result, count] of outcomes) lines.push(`outcome ${result}: ${count}`)
  for (const { key, read, newer } of regressions.slice(0, 5)) {
    const value = (r: Read) => `${r.version} (${r.kind} by ${r.writer})`
    lines.push(
      `version regression on key ${key}: process ${read.reader} read ${value(read)} ${(read.start - newer.end).toFixed(1)} ms after process ${newer.reader} read ${value(newer)}, ${newer.version - read.version} ms newer`,
    )
  }
  if (regressions.length > 5) lines.push(`... ${regressions.length - 5} more regressions`)
  if (outcome.focus) lines.push(`focus keys: ${outcome.focus.join(', ')}`)
  return lines.slice(0, 30)
}
