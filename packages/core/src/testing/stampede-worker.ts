/**
 * A child process for the multi-process tests, driven over the IPC channel by `workers.ts`:
 *
 *   node --conditions=@corral/source --import tsx stampede-worker.ts     (from the sources)
 *   node stampede-worker.js                                              (compiled)
 *
 * It imports the setup module given as its argument, if any (one that registers a backend of yours), creates
 * regions on a real backend (redis, memcached, or that one) and runs what the parent asks: a stampede of
 * concurrent getOrCreate calls on one key, a creator that never finishes (to be SIGKILLed while holding the
 * lock), one that announces itself (to be SIGSTOPped while holding it), invalidations (region-wide, by tag, by
 * dependency), and waits for invalidation marks to arrive. Each creator run is counted in this process and
 * reported, so the parent can add up the runs of every process.
 * For the fault suite it also runs continuous load with injected creator faults (`fault-load.ts`) and holds locks
 * with creators that hang or finish late.
 */
import { NO_VALUE, RegionRegistry, type CacheRegion } from '../index.js'
import { FaultLoad, holdLock, preciseNow, type Injection, type LoadSpec, type VersionedValue } from './fault-load.js'

interface Request {
  id: number
  op: string
  [field: string]: unknown
}

export interface CreatedValue {
  label: string
  pid: number
  /** which creator run of this process made it */
  run: number
  /** epoch ms (fractional) when the creator finished */
  madeAt: number
}

/** One call of a `load` run. */
export interface LoadSample {
  /** epoch ms (fractional) when the call began */
  at: number
  /** how long it took, ms */
  ms: number
  /** `hit`: answered from the cache; `created`: this call ran the creator; `error`: it threw (`code`) */
  result: 'hit' | 'created' | 'error'
  code?: string
}

export interface CallerResult {
  /** ms from the start of the stampede to this caller's answer */
  latencyMs: number
  /** epoch ms (fractional) when it got its answer */
  resolvedAt: number
  value?: CreatedValue | string
  error?: { name: string; code?: string; message: string }
}

const registry = new RegionRegistry()
const regions = new Map<string, CacheRegion>()
const backendErrors: Array<{ region: string; operation: string; message: string }> = []
let creatorRuns = 0
const loads = new Map<string, FaultLoad>()

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

function send(message: unknown): void {
  process.send?.(message)
}

function describeError(error: unknown): { name: string; code?: string; message: string } {
  const e = error as { name?: string; code?: string; message?: string }
  return { name: e?.name ?? 'Error', code: e?.code, message: e?.message ?? String(error) }
}

process.on('unhandledRejection', (error) => send({ event: 'unhandled', error: describeError(error) }))
process.on('uncaughtException', (error) => send({ event: 'unhandled', error: describeError(error) }))

/** The `tags` of a request, if any. */
function tagsOf(request: Request): { tags?: string[] } {
  return Array.isArray(request.tags) ? { tags: request.tags as string[] } : {}
}

function region(name: unknown): CacheRegion {
  const found = regions.get(String(name))
  if (!found) throw new Error(`no region ${String(name)} in worker ${process.pid}`)
  return found
}

function creator(label: string, creatorMs: number, onStart?: () => void) {
  return async (): Promise<CreatedValue> => {
    const run = ++creatorRuns
    onStart?.()
    await sleep(creatorMs)
    return { label, pid: process.pid, run, madeAt: preciseNow() }
  }
}

/** for `Atomics.wait`: a sleep that leaves the CPU to the other processes */
const pause = new Int32Array(new SharedArrayBuffer(4))

const handlers: Record<string, (request: Request) => Promise<unknown>> = {
  async configure(request) {
    const name = String(request.region)
    const created = registry.createRegion({ name, telemetry: false })
    created.configure(String(request.backend), {
      arguments: request.arguments as Record<string, unknown>,
      ...(request.expirationTime === undefined ? {} : { expirationTime: request.expirationTime as number }),
      // region options beyond these (hardTimeout, failSafe, ...), as the parent gives them
      ...((request.options as Record<string, unknown> | undefined) ?? {}),
    })
    created.on('backendError', ({ operation, error }) =>
      backendErrors.push({ region: name, operation, message: (error as Error)?.message ?? String(error) }),
    )
    regions.set(name, created)
    // Warm the connection up, so the stampede measures the cache and not the connect.
    await created.get(`warmup:${process.pid}`)
    return { pid: process.pid }
  },

  async stampede(request) {
    const target = region(request.region)
    const callers = Number(request.callers)
    const wait = Number(request.startAt) - Date.now()
    if (wait > 0) await sleep(wait)
    const runsBefore = creatorRuns
    const make = creator(String(request.label), Number(request.creatorMs))
    const started = performance.now()
    const results = await Promise.all(
      Array.from({ length: callers }, async (): Promise<CallerResult> => {
        try {
          const value = await target.getOrCreate(String(request.key), make, tagsOf(request))
          return { latencyMs: performance.now() - started, resolvedAt: preciseNow(), value }
        } catch (error) {
          return { latencyMs: performance.now() - started, resolvedAt: preciseNow(), error: describeError(error) }
        }
      }),
    )
    return { pid: process.pid, runs: creatorRuns - runsBefore, results }
  },

  async getOrCreate(request) {
    const target = region(request.region)
    const started = performance.now()
    const runsBefore = creatorRuns
    try {
      const value = await target.getOrCreate(
        String(request.key),
        creator(String(request.label), Number(request.creatorMs)),
        tagsOf(request),
      )
      return { value, latencyMs: performance.now() - started, runs: creatorRuns - runsBefore }
    } catch (error) {
      return { error: describeError(error), latencyMs: performance.now() - started, runs: creatorRuns - runsBefore }
    }
  },

  /**
   * getOrCreate with a creator that tells the parent (event `creating:<key>`) as soon as it runs, so the parent can
   * pause this process while it holds the lock; answers when the call does.
   */
  async createAnnounced(request) {
    const target = region(request.region)
    const key = String(request.key)
    const started = performance.now()
    const runsBefore = creatorRuns
    const make = creator(String(request.label), Number(request.creatorMs), () => send({ event: `creating:${key}` }))
    try {
      const value = await target.getOrCreate(key, make)
      return { value, latencyMs: performance.now() - started, runs: creatorRuns - runsBefore }
    } catch (error) {
      return { error: describeError(error), latencyMs: performance.now() - started, runs: creatorRuns - runsBefore }
    }
  },

  /**
   * Load for `durationMs`: `concurrency` loops, each calling getOrCreate on `keys` in turn, one call at a time with
   * `pauseMs` between calls. Reports every call (and the backend errors the region reported meanwhile).
   */
  async load(request) {
    const target = region(request.region)
    const keys = request.keys as string[]
    const until = Date.now() + Number(request.durationMs)
    const pauseMs = Number(request.pauseMs ?? 5)
    const errorsBefore = backendErrors.length
    const samples: LoadSample[] = []
    const loop = async (offset: number) => {
      for (let i = offset; Date.now() < until; i++) {
        const key = keys[i % keys.length]!
        const at = preciseNow()
        let created = false
        try {
          await target.getOrCreate(key, async () => {
            created = true
            return { label: 'load', pid: process.pid, run: ++creatorRuns, madeAt: preciseNow() }
          })
          samples.push({ at, ms: preciseNow() - at, result: created ? 'created' : 'hit' })
        } catch (error) {
          samples.push({
            at,
            ms: preciseNow() - at,
            result: 'error',
            code: describeError(error).code ?? describeError(error).name,
          })
        }
        await sleep(pauseMs)
      }
    }
    await Promise.all(Array.from({ length: Number(request.concurrency ?? 1) }, (_, i) => loop(i * 7)))
    samples.sort((a, b) => a.at - b.at)
    return { pid: process.pid, samples, backendErrors: backendErrors.length - errorsBefore }
  },

  /** Takes the lock and runs a creator that never finishes; tells the parent once it runs (then gets killed). */
  async hold(request) {
    const target = region(request.region)
    void target.getOrCreate(
      String(request.key),
      creator('never', 3_600_000, () => send({ event: 'holding', key: request.key })),
    )
    return { pid: process.pid }
  },

  async get(request) {
    const value = await region(request.region).get(String(request.key), {
      ignoreExpiration: request.ignoreExpiration === true,
    })
    return { value: value === NO_VALUE ? null : value }
  },

  /** Starts continuous load on a key space (see `FaultLoad`). */
  async loadStart(request) {
    const spec = request as unknown as LoadSpec
    if (loads.has(spec.region)) throw new Error(`load already running on ${spec.region}`)
    loads.set(spec.region, new FaultLoad(region(spec.region), spec))
    return { pid: process.pid }
  },

  /** Changes the faults the load's creators inject. */
  async inject(request) {
    const load = loads.get(String(request.region))
    if (!load) throw new Error(`no load on ${String(request.region)}`)
    load.injection = { hang: request.hang, throw: request.throw } as Injection
    return {}
  },

  /** Stops the load and reports every call. */
  async loadStop(request) {
    const load = loads.get(String(request.region))
    if (!load) throw new Error(`no load on ${String(request.region)}`)
    loads.delete(String(request.region))
    return load.stop(Number(request.boundMs))
  },

  /** Stores a versioned value under `key` (as the load's `set()` does); returns it. */
  async setVersioned(request) {
    const key = String(request.key)
    const value: VersionedValue = { key, version: Date.now(), pid: process.pid, seq: 0, kind: 'set' }
    await region(request.region).set(key, value)
    return { value, at: preciseNow() }
  },

  /**
   * Takes the lock of every key of `keys` with a creator that `hang`s (never finishes) or finishes `late`: it
   * makes its value at once (version = now), then returns it after `creatorMs`. Resolves once every lock is held;
   * each call's settlement is sent as a `settled` event.
   */
  async holdKeys(request) {
    const target = region(request.region)
    const keys = request.keys as string[]
    const held: VersionedValue[] = []
    for (const key of keys) {
      const { settled } = await holdLock(target, key, async () => {
        const value: VersionedValue = { key, version: Date.now(), pid: process.pid, seq: 0, kind: 'late' }
        held.push(value)
        if (request.mode === 'hang') return new Promise<never>(() => {})
        await sleep(Number(request.creatorMs))
        return value
      })
      settled.then(
        () => send({ event: 'settled', key, at: preciseNow() }),
        (error: unknown) => send({ event: 'settled', key, at: preciseNow(), error: describeError(error) }),
      )
    }
    return { pid: process.pid, held, at: preciseNow() }
  },

  /** Stores `value` under `key`; tells when the call started and when it resolved. */
  async set(request) {
    const startedAt = preciseNow()
    await region(request.region).set(String(request.key), request.value, tagsOf(request))
    return { startedAt, doneAt: preciseNow() }
  },

  /** Reads `key` `times` times in a row with getOrCreate; counts the hits by tier (and creator runs). */
  async readRepeatedly(request) {
    const target = region(request.region)
    const tiers = { l1: 0, l2: 0 }
    const onHit = ({ tier }: { tier: 'l1' | 'l2' }) => void tiers[tier]++
    target.on('hit', onHit)
    const runsBefore = creatorRuns
    try {
      const make = creator('repeated', 0)
      for (let i = 0; i < Number(request.times); i++) await target.getOrCreate(String(request.key), make)
    } finally {
      target.off('hit', onHit)
    }
    return { ...tiers, runs: creatorRuns - runsBefore }
  },

  /**
   * Resolves when `key` reads as `value` here (compared as JSON): when this process saw another one's change. Polls
   * every 0.2 ms or so.
   */
  async waitForValue(request) {
    const target = region(request.region)
    const expected = JSON.stringify(request.value)
    const timeoutMs = Number(request.timeoutMs ?? 5000)
    const deadline = Date.now() + timeoutMs
    let stale = 0
    for (;;) {
      const value = await target.get(String(request.key))
      if (JSON.stringify(value === NO_VALUE ? null : value) === expected)
        return { seenAt: preciseNow(), staleReads: stale }
      stale++
      if (Date.now() > deadline)
        throw new Error(`${String(request.key)} did not read as ${expected} within ${timeoutMs} ms`)
      // Sleep 0.2 ms without spinning (a spinning process would take the CPU the writer needs), then let I/O in.
      Atomics.wait(pause, 0, 0, 0.2)
      await new Promise<void>((resolve) => setImmediate(resolve))
    }
  },

  /** The region's counters (`statsSnapshot()`). */
  async stats(request) {
    return region(request.region).statsSnapshot()
  },

  /** Stores `value` under every key of `keys` (with `tags`). */
  async setMany(request) {
    const keys = request.keys as string[]
    await region(request.region).setMulti(new Map(keys.map((key) => [key, request.value])), tagsOf(request))
    return {}
  },

  /** Reads `keys` in one getMulti; `null` for a miss. */
  async getMany(request) {
    const values = await region(request.region).getMulti(request.keys as string[])
    return { values: values.map((value) => (value === NO_VALUE ? null : value)) }
  },

  async invalidateTags(request) {
    const startedAt = preciseNow()
    await region(request.region).invalidateTags(request.tags as string[], { hard: request.hard !== false })
    return { startedAt, doneAt: preciseNow() }
  },

  async dependencyAdd(request) {
    const options = request.expirationTime === undefined ? {} : { expirationTime: request.expirationTime as number }
    await region(request.region)
      .dependency(String(request.name), options)
      .addMulti(request.keys as string[])
    return {}
  },

  async dependencyKeys(request) {
    return { keys: await region(request.region).dependency(String(request.name)).keys() }
  },

  async dependencyInvalidate(request) {
    return { deleted: await region(request.region).dependency(String(request.name)).invalidate() }
  },

  /** Resolves when `key` reads as a miss (or stale) here: when this process saw an invalidation. */
  async waitForMiss(request) {
    const target = region(request.region)
    const timeoutMs = Number(request.timeoutMs ?? 5000)
    const deadline = Date.now() + timeoutMs
    for (;;) {
      if ((await target.get(String(request.key))) === NO_VALUE) return { seenAt: preciseNow() }
      if (Date.now() > deadline) throw new Error(`${String(request.key)} still read as a hit after ${timeoutMs} ms`)
      await sleep(1)
    }
  },

  async invalidate(request) {
    const target = region(request.region)
    const startedAt = preciseNow()
    await target.invalidate({ hard: request.hard !== false })
    const state = target.invalidationState()
    return { startedAt, doneAt: preciseNow(), at: request.hard !== false ? state.hardAt : state.softAt }
  },

  /** Resolves when the region's mark (hard or soft) rises above `above`: when this process saw an invalidation. */
  async waitForMarks(request) {
    const target = region(request.region)
    const field = request.hard !== false ? 'hardAt' : 'softAt'
    const above = Number(request.above)
    const timeoutMs = Number(request.timeoutMs ?? 5000)
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const value = target.invalidationState()[field]
      if (value > above) return { seenAt: preciseNow(), value }
      if (Date.now() > deadline) throw new Error(`the ${field} mark did not rise above ${above} within ${timeoutMs} ms`)
      await sleep(1)
    }
  },

  async marks(request) {
    return region(request.region).invalidationState()
  },

  async errors() {
    return { backendErrors: backendErrors.splice(0) }
  },

  async close() {
    await Promise.all([...regions.values()].map((r) => r.close()))
    regions.clear()
    setTimeout(() => process.exit(0), 10)
    return {}
  },
}

process.on('message', (message: Request) => {
  const handler = handlers[message.op]
  if (!handler) {
    send({ id: message.id, ok: false, error: { name: 'Error', message: `unknown op ${message.op}` } })
    return
  }
  handler(message).then(
    (result) => send({ id: message.id, ok: true, result }),
    (error: unknown) => send({ id: message.id, ok: false, error: describeError(error) }),
  )
})

// The parent going away (test timeout, crash) must not leave this process behind.
process.on('disconnect', () => process.exit(0))
// A setup module (`workerSetup`): registers the backends the parent will configure by name.
const setup = process.argv[2]
if (setup) await import(setup)
send({ event: 'started', pid: process.pid })
