/**
 * The worker side of the fault suite (`faults.ts`): continuous load on a key space, with every call tracked
 * against a deadline, and the faults a worker can inject into its own creators. Loaded by `stampede-worker`.
 *
 * Values carry versions: `{ key, version, pid, seq }`, where `version` is the wall-clock millisecond at which the
 * creator began (when it "read the source") or at which `set()` was called. A value that began later is newer, so
 * the versions a key's readers see must never go backwards once a newer value was stored; the parent checks that
 * over every process's reads.
 */
import { NO_VALUE, type CacheRegion } from '../index.js'

/** A value the load stores and checks. */
export interface VersionedValue {
  key: string
  /** epoch ms when its creator began, or when `set()` was called */
  version: number
  pid: number
  seq: number
  kind: 'create' | 'set' | 'late'
}

export interface LoadSpec {
  region: string
  keys: string[]
  /** concurrent call loops in this process */
  loops: number
  /** pause between two calls of a loop, ms */
  pauseMs: number
  /** a creator takes between half of this and all of it, ms */
  creatorMs: number
  /** shares of `get()` and `set()`; the rest is `getOrCreate()` */
  getShare: number
  setShare: number
}

/** Faults a worker injects into the creators it runs. */
export interface Injection {
  /** share of creator runs that never settle (and ignore their abort signal) */
  hang?: number
  /** share of creator runs that throw (an Error, or `undefined`, a string, an object...) */
  throw?: number
}

/**
 * One settled call, as sent to the parent: `[op, keyIndex, start, end, version, pid, outcome, kind]`. `op`: g(et),
 * c(getOrCreate), s(et). `version`, `pid` and `kind`: of the value it answered or stored (-1 and '' for none).
 * `outcome`: '' when it answered a well-formed value (or a miss, for get), else an error code, 'injected' or
 * 'wrong:<what>'.
 */
type CallRecord = [
  op: 'g' | 'c' | 's',
  key: number,
  start: number,
  end: number,
  version: number,
  pid: number,
  outcome: string,
  kind: VersionedValue['kind'] | '',
]

export interface LoadReport {
  pid: number
  records: CallRecord[]
  /** `[time, keyIndex]` of every hit event */
  hits: Array<[number, number]>
  /** calls that had not settled when the report was asked for, after waiting `boundMs` */
  stranded: Array<{ op: string; key: string; ageMs: number }>
  creatorRuns: number
  hung: number
  thrown: number
  /** growth of the region's regeneration-error counter during the load */
  regenerationErrors: number
  failSafe: number
  /** the states the region's circuit breaker went through */
  circuitStates: string[]
}

/** Marks an error a creator threw on purpose. */
class InjectedCreatorError extends Error {
  override name = 'InjectedCreatorError'
}

const THROWABLES: Array<() => unknown> = [
  () => new InjectedCreatorError('injected: the source failed'),
  () => undefined,
  () => 'injected: a string',
  () => ({ injected: true }),
  () => null,
]

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))
/** Wall-clock ms with sub-ms precision, comparable across the processes of one machine. */
export const preciseNow = () => performance.timeOrigin + performance.now()

let seq = 0

/** Whether `value` is a well-formed value of `key`; else what is wrong with it. */
function checkValue(key: string, value: unknown): string | undefined {
  if (value === null || typeof value !== 'object') return `wrong:not a value (${typeof value})`
  const v = value as Partial<VersionedValue>
  if (typeof v.version !== 'number' || typeof v.pid !== 'number') return 'wrong:malformed value'
  if (v.key !== key) return `wrong:value of another key (${String(v.key)})`
  return undefined
}

/** What a caller got back as an error, as a short class: a code, 'injected', or the error's name. */
function classifyError(error: unknown): string {
  if (error === undefined || error === null || typeof error !== 'object') return 'injected'
  if (error instanceof InjectedCreatorError) return 'injected'
  if ((error as { injected?: unknown }).injected === true) return 'injected'
  const code = (error as { code?: unknown }).code
  if (typeof code === 'string') return code
  return (error as { name?: string }).name ?? 'Error'
}

export class FaultLoad {
  readonly #records: CallRecord[] = []
  readonly #hits: Array<[number, number]> = []
  readonly #inFlight = new Map<number, { op: string; key: string; start: number }>()
  readonly #keyIndex: Map<string, number>
  readonly #loops: Array<Promise<void>> = []
  readonly #onHit: (event: { key: string }) => void
  readonly #onCircuit: (event: { state: string }) => void
  readonly #startErrors: number
  readonly #startFailSafe: number
  readonly #circuitStates: string[] = []
  #running = true
  #nextCall = 0
  #creatorRuns = 0
  #hung = 0
  #thrown = 0
  injection: Injection = {}

  constructor(
    private readonly region: CacheRegion,
    private readonly spec: LoadSpec,
  ) {
    this.#keyIndex = new Map(spec.keys.map((key, i) => [key, i]))
    this.#onHit = ({ key }) => {
      const index = this.#keyIndex.get(key)
      if (index !== undefined) this.#hits.push([preciseNow(), index])
    }
    this.#onCircuit = ({ state }) => this.#circuitStates.push(state)
    region.on('hit', this.#onHit)
    region.on('circuit', this.#onCircuit)
    const stats = region.statsSnapshot()
    this.#startErrors = stats.regenerationErrors
    this.#startFailSafe = stats.failSafe
    for (let i = 0; i < spec.loops; i++) this.#loops.push(this.#loop())
  }

  async #loop(): Promise<void> {
    // Loops start spread over one pause, so they do not call in step.
    await sleep(Math.random() * this.spec.pauseMs)
    while (this.#running) {
      await this.#one()
      await sleep(this.spec.pauseMs)
    }
  }

  #creator(key: string) {
    return async (): Promise<VersionedValue> => {
      const version = Date.now()
      this.#creatorRuns++
      const { hang = 0, throw: throwShare = 0 } = this.injection
      const dice = Math.random()
      if (dice < hang) {
        this.#hung++
        return new Promise<never>(() => {}) // never settles, ignores its signal
      }
      if (dice < hang + throwShare) {
        this.#thrown++
        throw THROWABLES[this.#thrown % THROWABLES.length]!()
      }
      const { creatorMs } = this.spec
      await sleep(creatorMs / 2 + (Math.random() * creatorMs) / 2)
      return { key, version, pid: process.pid, seq: ++seq, kind: 'create' }
    }
  }

  async #one(): Promise<void> {
    const { keys, getShare, setShare } = this.spec
    const index = Math.floor(Math.random() * keys.length)
    const key = keys[index]!
    const dice = Math.random()
    const op: CallRecord[0] = dice < getShare ? 'g' : dice < getShare + setShare ? 's' : 'c'
    const id = this.#nextCall++
    const start = preciseNow()
    this.#inFlight.set(id, { op, key, start })
    let version = -1
    let pid = -1
    let kind: CallRecord[7] = ''
    let outcome = ''
    try {
      if (op === 's') {
        const value: VersionedValue = { key, version: Date.now(), pid: process.pid, seq: ++seq, kind: 'set' }
        await this.region.set(key, value)
        ;({ version, pid, kind } = value)
      } else {
        const value =
          op === 'g'
            ? await this.region.get(key, { ignoreExpiration: true })
            : await this.region.getOrCreate(key, this.#creator(key))
        if (value !== NO_VALUE) {
          const wrong = checkValue(key, value)
          if (wrong) outcome = wrong
          else ({ version, pid, kind } = value as VersionedValue)
        } else if (op === 'c') outcome = 'wrong:getOrCreate answered NO_VALUE'
      }
    } catch (error) {
      outcome = classifyError(error)
    } finally {
      this.#inFlight.delete(id)
    }
    this.#records.push([op, index, start, preciseNow(), version, pid, outcome, kind])
  }

  /**
   * Stops starting calls, waits up to `boundMs` for the calls in flight to settle, and reports. Calls still in
   * flight then are stranded.
   */
  async stop(boundMs: number): Promise<LoadReport> {
    this.#running = false
    const deadline = performance.now() + boundMs
    while (this.#inFlight.size > 0 && performance.now() < deadline) await sleep(20)
    const now = preciseNow()
    const stranded = [...this.#inFlight.values()].map(({ op, key, start }) => ({ op, key, ageMs: now - start }))
    this.region.off('hit', this.#onHit)
    this.region.off('circuit', this.#onCircuit)
    const stats = this.region.statsSnapshot()
    return {
      pid: process.pid,
      records: this.#records.splice(0),
      hits: this.#hits.splice(0),
      stranded,
      creatorRuns: this.#creatorRuns,
      hung: this.#hung,
      thrown: this.#thrown,
      regenerationErrors: stats.regenerationErrors - this.#startErrors,
      failSafe: stats.failSafe - this.#startFailSafe,
      circuitStates: this.#circuitStates.splice(0),
    }
  }
}

/**
 * Takes the lock of `key` in `region` and runs `creator` under it, retrying (after deleting the key again) when a
 * caller of another process made the value first. Resolves once the creator runs, with the call's settlement.
 */
export async function holdLock(
  region: CacheRegion,
  key: string,
  creator: () => Promise<VersionedValue>,
): Promise<{ settled: Promise<unknown> }> {
  for (let attempt = 0; attempt < 50; attempt++) {
    await region.delete(key)
    let running!: () => void
    const started = new Promise<'started'>((resolve) => (running = () => resolve('started')))
    const settled = region.getOrCreate(
      key,
      async () => {
        running()
        return creator()
      },
      // The lock timeout must be what ends its exclusivity, not a creator timeout of its own.
      { hardTimeout: 3600 },
    )
    settled.catch(() => {})
    const ended = settled.then(
      () => 'settled' as const,
      () => 'settled' as const,
    )
    if ((await Promise.race([started, ended])) === 'started') return { settled }
  }
  throw new Error(`could not take the lock of ${key}: other processes kept making its value first`)
}
