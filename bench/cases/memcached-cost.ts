/**
 * Case 7 — what Corral costs memcached: commands and round trips per hit, per miss and per regeneration of an
 * expired value, and the latency of each on loopback.
 *
 * The case starts its own memcached and puts a counting proxy in front of it (`test-support/memcached-wire.ts`):
 * it counts the binary-protocol requests the client sends, by command, and the round trips (a burst of requests
 * sent before the client waits for an answer). Corral talks to the proxy like to a server, so nothing inside
 * Corral is instrumented. Sequential calls: hits on one warm key, misses on distinct cold keys (the creator
 * answers at once), regenerations of values made earlier and read with a per-call expiration of 1 ms (the
 * stale path: one lock attempt, then the creator). Everything the backend sends meanwhile counts (its
 * invalidation poll, once a second, included). Latency is measured without the proxy.
 */
import { RegionRegistry, type CacheRegion } from '@corral/core'
import { startMemcachedWireCounter, totalCommands, type WireCounts } from '../../test-support/memcached-wire.ts'
import { startMemcached } from '../../test-support/servers.ts'
import type { BenchCase } from '../lib/case.js'
import { callLatency } from '../lib/stats.js'
import { formatMs, type Table } from '../lib/table.js'

const HITS = 1000
const MISSES = 200
const LATENCY_BATCHES = 5

interface Row {
  label: string
  calls: number
  counts: WireCounts
  /** one call, ms: median of batch means */
  latencyMs: number
}

function region(servers: string, keyPrefix: string): CacheRegion {
  return new RegionRegistry()
    .createRegion({ name: 'bench' })
    .configure('memcached', { expirationTime: 300, arguments: { servers, keyPrefix } })
}

/** Median over LATENCY_BATCHES batches (after a warm-up batch) of the mean time of `call(batch, i)`, ms. */
function latency(calls: number, call: (batch: number, i: number) => Promise<unknown>): Promise<number> {
  return callLatency(LATENCY_BATCHES, calls, call)
}

const describeCommands = (commands: Record<string, number>, calls: number) =>
  Object.entries(commands)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, count]) => `${+(count / calls).toFixed(2)} ${name}`)
    .join(', ')

export const memcachedCostCase: BenchCase = {
  id: 'memcached-cost',
  title: 'memcached cost',
  description:
    'memcached commands and round trips per hit, per miss and per regeneration of an expired value (counted on the wire by a proxy), and their latency',
  needsRedis: false,
  async run({ log }) {
    const server = await startMemcached()
    const wire = await startMemcachedWireCounter(server)
    const rows: Row[] = []
    try {
      // Counted through the proxy.
      const counted = region(wire.servers, 'counted:')
      const plain = region(server.servers, 'timed:')
      try {
        log('  hits')
        await counted.getOrCreate('warm', () => 'x'.repeat(16))
        await plain.getOrCreate('warm', () => 'x'.repeat(16))
        const hit = await wire.measure(async () => {
          for (let i = 0; i < HITS; i++) await counted.getOrCreate('warm', () => 'never')
        })
        rows.push({
          label: 'hit',
          calls: HITS,
          counts: hit,
          latencyMs: await latency(HITS, () => plain.getOrCreate('warm', () => 'never')),
        })

        log('  misses')
        const miss = await wire.measure(async () => {
          for (let i = 0; i < MISSES; i++) await counted.getOrCreate(`cold-${i}`, () => i)
        })
        rows.push({
          label: 'miss (no value: wait for the lock)',
          calls: MISSES,
          counts: miss,
          latencyMs: await latency(MISSES, (batch, i) => plain.getOrCreate(`cold-${batch}-${i}`, () => i)),
        })

        log('  regenerations of expired values')
        const expired = { expirationTime: 0.001 }
        const stale = await wire.measure(async () => {
          for (let i = 0; i < MISSES; i++) await counted.getOrCreate(`cold-${i}`, () => -i, expired)
        })
        rows.push({
          label: 'regeneration (expired value: one lock attempt)',
          calls: MISSES,
          counts: stale,
          latencyMs: await latency(MISSES, (batch, i) => plain.getOrCreate(`cold-${batch}-${i}`, () => -i, expired)),
        })
      } finally {
        await Promise.all([counted.close(), plain.close()])
      }
    } finally {
      await wire.close()
      await server.stop()
    }

    const table: Table = {
      title: `Corral on memcached: commands and round trips per call (${HITS} sequential hits, ${MISSES} misses, ${MISSES} regenerations)`,
      header: ['call', 'commands sent', 'round trips', 'latency', 'which'],
      rows: rows.map((row) => [
        row.label,
        String(+(totalCommands(row.counts.commands) / row.calls).toFixed(2)),
        String(+(row.counts.roundTrips / row.calls).toFixed(2)),
        formatMs(row.latencyMs),
        describeCommands(row.counts.commands, row.calls),
      ]),
      notes: [
        'Counted by a proxy between Corral and memcached: requests by binary-protocol command (`cas-set`, ' +
          '`cas-delete`: with a CAS version) and round trips (requests sent together, then answers awaited). A ' +
          'miss: GET; ADD lock + GET lock + GET value; the fenced write of the value + the CAS delete of the lock. ' +
          `Latency: sequential calls on loopback without the proxy, median of ${LATENCY_BATCHES} batches.`,
      ],
    }
    return {
      tables: [table],
      data: {
        rows: rows.map((row) => ({
          label: row.label,
          calls: row.calls,
          commandsPerCall: totalCommands(row.counts.commands) / row.calls,
          roundTripsPerCall: row.counts.roundTrips / row.calls,
          commands: row.counts.commands,
          latencyMs: row.latencyMs,
        })),
      },
    }
  },
}
