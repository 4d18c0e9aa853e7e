/**
 * Case 3 — expiry under load: a cached value has just expired and CALLERS concurrent callers ask for it, with a
 * creator that takes CREATOR_MS. A library with stale-while-revalidate serves the expired value to callers while
 * one refresh runs; the others block until the new value exists. We count, per library, the callers that got
 * the old value (served stale) and those that got the new one (blocked: they waited for the creator), and the
 * p99 latency of each group.
 *
 * Libraries without a way to serve a value after its expiry are listed as n/a rather than measured: with them
 * every caller blocks, which the cold stampede case already shows.
 */
import {
  MEMORY_ADAPTERS,
  corralBackgroundRunner,
  corralTelemetryOff,
  type CacheUnderTest,
  type MemoryAdapter,
} from '../lib/adapters.js'
import type { BenchCase } from '../lib/case.js'
import { percentile, sleep, sum } from '../lib/stats.js'
import { formatMs, type Table } from '../lib/table.js'

const CALLERS = 200
const CREATOR_MS = 50
/** Whole seconds: async-cache-dedupe only counts TTLs in seconds. */
const TTL_MS = 1000
const STALE_MS = 60_000
const TRIALS = 3

interface ExpiryOutcome {
  id: string
  label: string
  supported: boolean
  feature: string
  /** creator runs per trial, from the burst up to the follow-up read (background refreshes included) */
  creatorCalls?: number[]
  blocked?: number
  servedStale?: number
  errors?: number
  blockedP99Ms?: number
  staleP99Ms?: number
  /** trials in which a read shortly after the burst returned the refreshed value */
  refreshedTrials?: number
}

interface Trial {
  creatorCalls: number
  staleMs: number[]
  blockedMs: number[]
  errors: number
  refreshed: boolean
}

/** One expiry on a fresh key: warm it, let it expire, fire the burst, then check that it was refreshed. */
async function trial(cache: CacheUnderTest, key: string, counters: { creatorCalls: number }): Promise<Trial> {
  const original = (await cache.getOrCreate(key)) as { version: number }
  await sleep(TTL_MS + 150)
  counters.creatorCalls = 0

  const burstStart = performance.now()
  const answers = await Promise.allSettled(
    Array.from({ length: CALLERS }, async () => {
      const value = (await cache.getOrCreate(key)) as { version: number }
      return { stale: value.version === original.version, ms: performance.now() - burstStart }
    }),
  )
  const fulfilled = answers.flatMap((a) => (a.status === 'fulfilled' ? [a.value] : []))
  // Background refreshes may start after the burst has been answered: count them too, up to the follow-up read.
  await sleep(CREATOR_MS * 3)
  const creatorCalls = counters.creatorCalls
  const after = (await cache.getOrCreate(key)) as { version: number }
  return {
    creatorCalls,
    staleMs: fulfilled.filter((a) => a.stale).map((a) => a.ms),
    blockedMs: fulfilled.filter((a) => !a.stale).map((a) => a.ms),
    errors: answers.length - fulfilled.length,
    refreshed: after.version !== original.version,
  }
}

async function measure(adapter: MemoryAdapter): Promise<ExpiryOutcome> {
  let version = 0
  const counters = { creatorCalls: 0 }
  const cache = await adapter.create({
    creator: async () => {
      counters.creatorCalls++
      const created = ++version
      await sleep(CREATOR_MS)
      return { version: created }
    },
    ttlMs: TTL_MS,
    staleMs: STALE_MS,
    maxEntries: 10_000,
  })
  const trials: Trial[] = []
  try {
    for (let i = 0; i < TRIALS; i++) trials.push(await trial(cache, `expiring-key-${i}`, counters))
  } finally {
    await cache.close()
  }
  const blocked = trials.flatMap((t) => t.blockedMs)
  const stale = trials.flatMap((t) => t.staleMs)
  return {
    id: adapter.id,
    label: adapter.label,
    supported: true,
    feature: adapter.staleWhileRevalidate.how,
    creatorCalls: trials.map((t) => t.creatorCalls),
    blocked: blocked.length,
    servedStale: stale.length,
    errors: sum(trials.map((t) => t.errors)),
    blockedP99Ms: percentile(blocked, 99),
    staleP99Ms: percentile(stale, 99),
    refreshedTrials: trials.filter((t) => t.refreshed).length,
  }
}

const dash = (value: number | undefined) => (value === undefined || Number.isNaN(value) ? '—' : formatMs(value))

export const expiryCase: BenchCase = {
  id: 'expiry',
  title: 'Expiry under load (stale-while-revalidate)',
  description: `${CALLERS} concurrent callers the moment a value expires, creator takes ${CREATOR_MS} ms: who waits, who is served stale`,
  needsRedis: false,
  async run({ log }) {
    const adapters = [...MEMORY_ADAPTERS.filter((a) => a !== corralTelemetryOff), corralBackgroundRunner]
    const outcomes: ExpiryOutcome[] = []
    for (const adapter of adapters) {
      if (!adapter.staleWhileRevalidate.supported) {
        const { how } = adapter.staleWhileRevalidate
        outcomes.push({ id: adapter.id, label: adapter.label, supported: false, feature: how })
        continue
      }
      log(`  ${adapter.label}`)
      outcomes.push(await measure(adapter))
    }
    const table: Table = {
      title: `Expiry under load: ${CALLERS} concurrent callers on a just-expired key, ${CREATOR_MS} ms creator`,
      header: ['library', 'creator runs per trial', 'blocked', 'served stale', 'p99 blocked', 'p99 stale', 'refreshed'],
      rows: outcomes.map((o) =>
        o.supported
          ? [
              o.label.replace(' (telemetry on)', ''),
              o.creatorCalls!.join(', '),
              String(o.blocked),
              String(o.servedStale),
              dash(o.blockedP99Ms),
              dash(o.staleP99Ms),
              `${o.refreshedTrials} / ${TRIALS}`,
            ]
          : [o.label, 'n/a', 'n/a', 'n/a', 'n/a', 'n/a', 'n/a'],
      ),
      notes: [
        `${TRIALS} trials per library (fresh key each), counts summed over them. blocked = got the new value ` +
          '(waited for the creator); served stale = got the expired value at once. Latency: from the burst start ' +
          `to each answer. refreshed: trials in which a read ${CREATOR_MS * 3} ms after the burst got the new value.`,
        ...outcomes.map((o) => `- ${o.label.replace(' (telemetry on)', '')}: ${o.feature}`),
      ],
    }
    return {
      tables: [table],
      data: { callers: CALLERS, creatorMs: CREATOR_MS, ttlMs: TTL_MS, staleMs: STALE_MS, trials: TRIALS, outcomes },
    }
  },
}
