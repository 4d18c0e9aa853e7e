/**
 * Case 2 — cold stampede in one process: CALLERS concurrent calls for one key that is not cached, with a creator
 * that takes CREATOR_MS (a database query). A library with stampede protection runs the creator once and hands
 * its value to every caller; one without runs it once per caller. All calls start in the same tick, which is how
 * a burst of requests arrives after a deploy or a cache flush.
 */
import { MEMORY_ADAPTERS, corralTelemetryOff } from '../lib/adapters.js'
import type { BenchCase } from '../lib/case.js'
import { sleep } from '../lib/stats.js'
import { formatMs, type Table } from '../lib/table.js'

const CALLERS = 1000
const CREATOR_MS = 20

export interface StampedeOutcome {
  id: string
  label: string
  creatorCalls: number
  /** distinct values the callers received: 1 means every caller got the one creator's value */
  distinctValues: number
  errors: number
  /** from the first call to the last caller's answer */
  totalMs: number
}

export const stampedeCase: BenchCase = {
  id: 'stampede',
  title: 'Cold stampede in one process',
  description: `${CALLERS} concurrent callers on one cold key, creator takes ${CREATOR_MS} ms: how many times each library runs it`,
  needsRedis: false,
  async run() {
    const outcomes: StampedeOutcome[] = []
    // Telemetry does not change who runs the creator: one Corral row is enough.
    for (const adapter of MEMORY_ADAPTERS.filter((a) => a !== corralTelemetryOff)) {
      let creatorCalls = 0
      const cache = await adapter.create({
        creator: async (key) => {
          const call = ++creatorCalls
          await sleep(CREATOR_MS)
          return { key, call }
        },
        ttlMs: 300_000,
        maxEntries: 10_000,
      })
      const started = performance.now()
      const settled = await Promise.allSettled(Array.from({ length: CALLERS }, () => cache.getOrCreate('cold-key')))
      const totalMs = performance.now() - started
      const values = settled.flatMap((s) => (s.status === 'fulfilled' ? [(s.value as { call: number }).call] : []))
      outcomes.push({
        id: adapter.id,
        label: adapter.label,
        creatorCalls,
        distinctValues: new Set(values).size,
        errors: settled.length - values.length,
        totalMs,
      })
      await cache.close()
    }
    const table: Table = {
      title: `Cold stampede: ${CALLERS} concurrent callers, one key, ${CREATOR_MS} ms creator`,
      header: ['library', 'creator calls', 'distinct values returned', 'errors', 'all answered after'],
      rows: outcomes.map((o) => [
        o.label.replace(' (telemetry on)', ''),
        String(o.creatorCalls),
        String(o.distinctValues),
        String(o.errors),
        formatMs(o.totalMs),
      ]),
      notes: ['1 creator call = stampede prevented; the Map row shows what an unprotected cache does.'],
    }
    return { tables: [table], data: { callers: CALLERS, creatorMs: CREATOR_MS, outcomes } }
  },
}
