import type { CacheRegion } from '../index.js'
import { preciseNow } from './fault-load.js'
import { percentile } from './workers.js'

/** Prints a measured figure so that it shows in the test output (grep for [corral-measure]). */
export function reportFigure(label: string, values: Record<string, number | string>): void {
  const text = Object.entries(values)
    .map(([name, value]) => `${name}=${typeof value === 'number' ? value.toFixed(2) : value}`)
    .join(' ')
  console.log(`[corral-measure] ${label}: ${text}`)
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/**
 * How long a waiter takes to get the value once the creator has finished, across two regions on separate
 * backend instances (separate connections: as two processes would be). In each trial `creator` takes the lock and
 * runs 10ms; `waiter` arrives 3ms after the creator started, finds no value, waits on the distributed lock, and
 * returns the creator's value. Returns the latencies in ms (creator finished → waiter answered) and how many
 * times a waiter ran its own creator (must be 0).
 */
export async function measureWaiterLatency(
  creator: CacheRegion,
  waiter: CacheRegion,
  trials: number,
): Promise<{ latencies: number[]; p50: number; p99: number; waiterRuns: number }> {
  const latencies: number[] = []
  let waiterRuns = 0
  for (let i = 0; i < trials; i++) {
    const key = `latency:${process.pid}:${Date.now()}:${i}`
    let madeAt = 0
    let running!: () => void
    const started = new Promise<void>((resolve) => (running = resolve))
    const created = creator.getOrCreate(key, async () => {
      running()
      await sleep(10)
      madeAt = preciseNow()
      return i
    })
    // The waiter comes once the creator holds the lock and runs.
    await started
    await sleep(3)
    const waited = waiter
      .getOrCreate(key, () => {
        waiterRuns++
        return -1
      })
      .then((value) => ({ value, at: preciseNow() }))
    const [, { value, at }] = await Promise.all([created, waited])
    if (value !== i) waiterRuns++
    latencies.push(at - madeAt)
  }
  return { latencies, p50: percentile(latencies, 50), p99: percentile(latencies, 99), waiterRuns }
}
