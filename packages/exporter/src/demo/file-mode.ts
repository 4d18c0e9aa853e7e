/**
 * The demo's file mode (`CORRAL_DEMO_FILE=<directory>`): a `catalog` region on the file backend, which every demo
 * process started with the same directory shares, with its dogpile lock, and no server.
 *
 * Every `RESTOCK_EVERY_MS` of the wall clock, each process sends `RESTOCK_CALLERS` callers for the same new key at the
 * same moment: a stampede across the processes of the machine. One process runs the creator; the others wait for it
 * through the file backend's lock (their dashboards count the callers as coalesced, "waited"), and every caller gets
 * the one value.
 */
import { createRegion, type CacheRegion } from '@corral/core'
import type { RegionTraffic } from './workload.js'

export const RESTOCK_EVERY_MS = 10_000
export const RESTOCK_CALLERS = 15
const RESTOCK_CREATOR_MS = 300

/** The `catalog` region on the file backend in `directory`, its share of the traffic, and its restock bursts. */
export function fileMode(directory: string): { traffic: RegionTraffic; stop: () => void } {
  const region = createRegion({ name: 'catalog' }).configure('file', {
    expirationTime: 20,
    arguments: { path: directory },
  })
  const traffic: RegionTraffic = {
    region,
    keys: Array.from({ length: 300 }, (_, i) => `catalog:item-${i}`),
    skew: 1.1,
    weight: 20,
    latencyMs: [20, 120],
    create: (key) => ({ key, title: `Item ${key.slice(13)}`, price: (key.length * 3.7) % 50 }),
  }
  return { traffic, stop: slotBursts(region, CATALOG_RESTOCK) }
}

const CATALOG_RESTOCK = 'catalog:restock-'

/** The key every process restocks in the current slot of the wall clock: the same in every process. */
export function restockKey(now = Date.now(), keyPrefix = CATALOG_RESTOCK): string {
  return `${keyPrefix}${Math.floor(now / RESTOCK_EVERY_MS)}`
}

/**
 * A stampede across processes: every `RESTOCK_EVERY_MS` of the wall clock, sends `RESTOCK_CALLERS` callers for the
 * slot's key (`keyPrefix` and the slot number) to `region`. Every process doing so at once, one runs the creator and
 * the others wait for it through the backend's lock. The timer does not keep the process alive. Returns a stop.
 */
export function slotBursts(region: CacheRegion, keyPrefix: string): () => void {
  let timer: NodeJS.Timeout | undefined
  const schedule = () => {
    timer = setTimeout(
      () => {
        const key = restockKey(Date.now(), keyPrefix)
        const creator = () =>
          new Promise((resolve) => setTimeout(() => resolve({ key, units: 40, by: process.pid }), RESTOCK_CREATOR_MS))
        for (let i = 0; i < RESTOCK_CALLERS; i++) region.getOrCreate(key, creator).catch(() => undefined)
        schedule()
      },
      // a little past the slot's start, so that every process computes the same key
      RESTOCK_EVERY_MS - (Date.now() % RESTOCK_EVERY_MS) + 50,
    )
    timer.unref()
  }
  schedule()
  return () => clearTimeout(timer)
}
