/**
 * The demo's synthetic traffic: skewed (Zipf) key popularity, slow creators, and bursts of concurrent callers on
 * one key, so that hot keys, regenerations, stale serving and coalesced callers (stampedes prevented) all show up
 * within seconds, at a modest CPU cost.
 */
import type { CacheRegion } from '@corral/core'

/** Draws ranks 0..n-1 with P(rank r) ∝ 1 / (r + 1)^s: rank 0 is the most popular. */
export function zipfSampler(n: number, s: number, random: () => number = Math.random): () => number {
  if (!Number.isInteger(n) || n < 1) throw new RangeError('zipfSampler: n must be a positive integer')
  const cdf = new Float64Array(n)
  let sum = 0
  for (let i = 0; i < n; i++) {
    sum += 1 / (i + 1) ** s
    cdf[i] = sum
  }
  for (let i = 0; i < n; i++) cdf[i] = (cdf[i] ?? 0) / sum
  return () => {
    const u = random()
    let lo = 0
    let hi = n - 1
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if ((cdf[mid] ?? 1) < u) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}

export interface RegionTraffic {
  region: CacheRegion
  /** keys by popularity: keys[0] is the hottest */
  keys: readonly string[]
  /** Zipf exponent: higher is more skewed */
  skew: number
  /** share of the steady traffic */
  weight: number
  /** builds the value of a key (called by the one creator of a regeneration) */
  create: (key: string) => unknown
  /** creator latency in milliseconds: [min, max] (skewed towards min). Default [20, 200]. */
  latencyMs?: readonly [number, number]
  /** share of creator runs that fail. Default 0. */
  errorRate?: number
}

export interface WorkloadOptions {
  /** steady gets per second over all regions. Default 800. */
  getsPerSecond?: number
  /** milliseconds between two bursts (uniform in [min, max]). Default [1500, 4000]. */
  burstEveryMs?: readonly [number, number]
  /** concurrent callers in a burst (uniform in [min, max]). Default [20, 60]. */
  burstCallers?: readonly [number, number]
  /** get calls allowed in flight at once (a slow backend must not pile up promises). Default 2000. */
  maxInFlight?: number
  random?: () => number
  /** reports an error of the workload itself (not a creator failure, which is part of the show) */
  onError?: (error: unknown) => void
}

const TICK_MS = 50

/** Runs the traffic until `stop()`. */
export class Workload {
  readonly issued = { gets: 0, bursts: 0, errors: 0 }
  private readonly samplers: Array<() => number>
  private readonly totalWeight: number
  private readonly inFlight = new Set<Promise<unknown>>()
  private tickTimer: NodeJS.Timeout | undefined
  private burstTimer: NodeJS.Timeout | undefined
  private launches = 0
  private carry = 0
  private running = false

  constructor(
    private readonly traffic: readonly RegionTraffic[],
    private readonly options: WorkloadOptions = {},
  ) {
    const random = options.random ?? Math.random
    this.samplers = traffic.map((t) => zipfSampler(t.keys.length, t.skew, random))
    this.totalWeight = traffic.reduce((sum, t) => sum + t.weight, 0)
  }

  start(): void {
    if (this.running) return
    this.running = true
    this.tickTimer = setInterval(() => this.tick(), TICK_MS)
    this.scheduleBurst()
  }

  /** Stops issuing calls and waits (at most `timeoutMs`) for the calls in flight. */
  async stop(timeoutMs = 2000): Promise<void> {
    this.running = false
    clearInterval(this.tickTimer)
    clearTimeout(this.burstTimer)
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      Promise.allSettled([...this.inFlight]),
      new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs))),
    ])
    clearTimeout(timer)
  }

  private get random(): () => number {
    return this.options.random ?? Math.random
  }

  private tick(): void {
    const perTick = ((this.options.getsPerSecond ?? 800) * TICK_MS) / 1000 + this.carry
    const count = Math.floor(perTick)
    this.carry = perTick - count
    for (let i = 0; i < count; i++) {
      const index = this.pickRegion()
      const traffic = this.traffic[index]
      const sampler = this.samplers[index]
      if (traffic === undefined || sampler === undefined) continue
      const key = traffic.keys[sampler()]
      if (key !== undefined) this.get(traffic, key)
    }
  }

  private pickRegion(): number {
    let u = this.random() * this.totalWeight
    for (let i = 0; i < this.traffic.length; i++) {
      u -= this.traffic[i]?.weight ?? 0
      if (u <= 0) return i
    }
    return this.traffic.length - 1
  }

  private scheduleBurst(): void {
    const [min, max] = this.options.burstEveryMs ?? [1500, 4000]
    this.burstTimer = setTimeout(
      () => {
        if (!this.running) return
        this.burst()
        this.scheduleBurst()
      },
      min + this.random() * (max - min),
    )
  }

  /**
   * Many callers want one key at the same moment. Half of the bursts hit a key nobody has yet (a product launch):
   * one caller runs the creator, the others wait for it. The other half hit one of the hottest keys with a tiny
   * per-call expiration, as if it had just expired: one caller regenerates, the others get the stale value at once.
   */
  private burst(): void {
    const index = this.pickRegion()
    const traffic = this.traffic[index]
    if (traffic === undefined) return
    const [min, max] = this.options.burstCallers ?? [20, 60]
    const callers = Math.round(min + this.random() * (max - min))
    this.issued.bursts++
    if (this.random() < 0.5) {
      const key = `${traffic.keys[0]?.split(':')[0] ?? 'key'}:launch-${++this.launches}`
      for (let i = 0; i < callers; i++) this.get(traffic, key)
    } else {
      const key = traffic.keys[Math.floor(this.random() * Math.min(5, traffic.keys.length))]
      if (key === undefined) return
      for (let i = 0; i < callers; i++) this.get(traffic, key, 0.001)
    }
  }

  private get(traffic: RegionTraffic, key: string, expirationTime?: number): void {
    if (!this.running || this.inFlight.size >= (this.options.maxInFlight ?? 2000)) return
    this.issued.gets++
    const call = traffic.region
      .getOrCreate(key, () => this.create(traffic, key), expirationTime === undefined ? undefined : { expirationTime })
      .catch((error: unknown) => {
        this.issued.errors++
        if (!(error instanceof DemoCreatorError)) this.options.onError?.(error)
      })
      .finally(() => this.inFlight.delete(call))
    this.inFlight.add(call)
  }

  private async create(traffic: RegionTraffic, key: string): Promise<unknown> {
    const [min, max] = traffic.latencyMs ?? [20, 200]
    const u = this.random()
    await new Promise((resolve) => setTimeout(resolve, min + u * u * (max - min)))
    if (this.random() < (traffic.errorRate ?? 0)) throw new DemoCreatorError(`upstream timeout while building ${key}`)
    return traffic.create(key)
  }
}

/** A simulated upstream failure: shown as a regeneration error, expected by the demo. */
export class DemoCreatorError extends Error {
  override readonly name = 'DemoCreatorError'
  readonly code = 'E_DEMO_UPSTREAM'
}
