/**
 * Case 6 — memory.
 *
 * - Memory per ENTRIES cached entries: Corral's memory backend against a Map and lru-cache (without and with a
 *   TTL, which Corral's entries need) holding the same keys and values. Keys and values are built before the
 *   measurement and kept alive by the benchmark, so the figure is what each store adds per entry (its index,
 *   recency list and, for Corral, the creation time and extensions). Heap plus ArrayBuffer memory, so typed
 *   arrays count.
 * - The hot-key tracker with DISTINCT_KEYS one-off keys: its own size estimate (`approximateBytes()`), and the
 *   heap growth of a region with telemetry on (and off, for reference) over those keys. Bounded memory means the
 *   growth does not depend on the number of distinct keys.
 * Needs `node --expose-gc` for a full collection before each heap reading.
 */
import { HotKeyTracker, RegionRegistry, createRegion } from '@corral/core'
import { LRUCache } from 'lru-cache'
import type { BenchCase } from '../lib/case.js'
import { collectGarbage } from '../lib/stats.js'
import { formatBytes, type Table } from '../lib/table.js'

const ENTRIES = 100_000
const DISTINCT_KEYS = 1_000_000
const CHECKPOINT_KEYS = 100_000
const WARMUP_KEYS = 20_000

/**
 * The V8 heap plus the memory of ArrayBuffers, which lives outside the heap: typed arrays (lru-cache's recency
 * lists, Corral's entry store) would otherwise look free.
 */
function heapUsed(): number {
  collectGarbage()
  const { heapUsed, arrayBuffers } = process.memoryUsage()
  return heapUsed + arrayBuffers
}

/** Heap retained by what `build` returns (measured while the result is still referenced). */
async function retainedBy<T>(build: () => Promise<T>): Promise<{ bytes: number; value: T }> {
  const before = heapUsed()
  const value = await build()
  const bytes = heapUsed() - before
  return { bytes, value }
}

interface Store {
  label: string
  /** Builds the store holding every key → value; returns it, and how to release it after the reading. */
  fill(keys: readonly string[], values: readonly object[]): Promise<{ store: unknown; close?: () => Promise<void> }>
}

const STORES: Store[] = [
  {
    label: 'Map',
    fill: async (keys, values) => ({ store: new Map(keys.map((key, i) => [key, values[i]])) }),
  },
  {
    label: 'lru-cache (max = entries)',
    fill: async (keys, values) => {
      const lru = new LRUCache<string, object>({ max: keys.length })
      keys.forEach((key, i) => lru.set(key, values[i]!))
      return { store: lru }
    },
  },
  {
    // Corral's entries expire, so this is the lru-cache to compare with: a TTL adds its per-slot timestamps.
    label: 'lru-cache (max = entries, ttl)',
    fill: async (keys, values) => {
      const lru = new LRUCache<string, object>({ max: keys.length, ttl: 300_000 })
      keys.forEach((key, i) => lru.set(key, values[i]!))
      return { store: lru }
    },
  },
  {
    label: 'corral memory backend',
    fill: async (keys, values) => {
      const region = createRegion({ registry: new RegionRegistry() }).configure('memory', {
        expirationTime: 300,
        arguments: { maxEntries: keys.length },
      })
      for (let i = 0; i < keys.length; i++) await region.set(keys[i]!, values[i])
      return { store: region, close: () => region.close() }
    },
  },
]

/**
 * Heap growth of a region over one-off keys (each a miss, so each is recorded by the hot-key tracker), read at
 * CHECKPOINT_KEYS and DISTINCT_KEYS. The baseline is taken after WARMUP_KEYS, once code is compiled and lazy
 * structures exist, so what remains is what the keys themselves leave behind: ~0 for bounded telemetry.
 */
async function regionGrowth(telemetry: boolean): Promise<{ atCheckpoint: number; atEnd: number }> {
  const region = createRegion({
    registry: new RegionRegistry(),
    ...(telemetry ? {} : { telemetry: false as const }),
  }).configure('memory', { expirationTime: 300 })
  for (let i = 0; i < WARMUP_KEYS; i++) await region.get(`warm-up:${i}`)
  const baseline = heapUsed()
  let atCheckpoint = 0
  for (let i = 0; i < DISTINCT_KEYS; i++) {
    await region.get(`one-off:${i}`)
    if (i + 1 === CHECKPOINT_KEYS) atCheckpoint = heapUsed() - baseline
  }
  const atEnd = heapUsed() - baseline
  await region.close()
  return { atCheckpoint, atEnd }
}

/** The tracker's own estimate after DISTINCT_KEYS one-off keys. */
function trackerEstimate(): number {
  const tracker = new HotKeyTracker()
  for (let i = 0; i < DISTINCT_KEYS; i++) tracker.record(`one-off:${i}`, 'miss')
  return tracker.approximateBytes()
}

export const memoryCase: BenchCase = {
  id: 'memory',
  title: 'Memory',
  description: `retained heap per ${ENTRIES.toLocaleString('en-US')} cached entries, and the hot-key tracker with ${DISTINCT_KEYS.toLocaleString('en-US')} distinct keys`,
  needsRedis: false,
  async run({ log }) {
    if (!collectGarbage()) {
      const table: Table = { title: 'Memory', header: ['result'], rows: [['n/a: run node with --expose-gc']] }
      return { tables: [table], data: { unavailable: 'global.gc not exposed' } }
    }
    const keys = Array.from({ length: ENTRIES }, (_, i) => `user:${i}`)
    const values = keys.map((key, i) => ({ id: i, key }))
    const perStore: Array<{ label: string; bytes: number; bytesPerEntry: number }> = []
    for (const store of STORES) {
      log(`  ${store.label}`)
      const { bytes, value } = await retainedBy(() => store.fill(keys, values))
      perStore.push({ label: store.label, bytes, bytesPerEntry: bytes / ENTRIES })
      await value.close?.()
    }

    log(`  ${DISTINCT_KEYS.toLocaleString('en-US')} distinct keys, telemetry off / on`)
    const off = await regionGrowth(false)
    const on = await regionGrowth(true)
    const estimate = trackerEstimate()

    const storeTable: Table = {
      title: `Heap per ${ENTRIES.toLocaleString('en-US')} entries (keys and values excluded)`,
      header: ['store', 'retained heap', 'per entry'],
      notes: ['Retained heap: the V8 heap plus ArrayBuffer memory (typed arrays live outside the heap).'],
      rows: perStore.map((s) => [s.label, formatBytes(s.bytes), formatBytes(s.bytesPerEntry)]),
    }
    const trackerTable: Table = {
      title: `Hot-key tracker with ${DISTINCT_KEYS.toLocaleString('en-US')} distinct keys`,
      header: ['measured', 'value'],
      rows: [
        ['tracker approximateBytes() after 1M keys (default options)', formatBytes(estimate)],
        [
          `region heap growth, telemetry on, after ${CHECKPOINT_KEYS.toLocaleString('en-US')} keys`,
          formatBytes(on.atCheckpoint),
        ],
        [
          `region heap growth, telemetry on, after ${DISTINCT_KEYS.toLocaleString('en-US')} keys`,
          formatBytes(on.atEnd),
        ],
        [
          `region heap growth, telemetry off, after ${DISTINCT_KEYS.toLocaleString('en-US')} keys`,
          formatBytes(off.atEnd),
        ],
      ],
      notes: [
        `Heap growth is measured from a baseline taken after ${WARMUP_KEYS.toLocaleString('en-US')} warm-up keys; ` +
          'every key is a miss, which the tracker always records (hits are sampled). Growth near zero, with ' +
          'telemetry on as with it off, is what bounded memory looks like; a few hundred KB either way is GC noise.',
      ],
    }
    return {
      tables: [storeTable, trackerTable],
      data: {
        entries: ENTRIES,
        perStore,
        distinctKeys: DISTINCT_KEYS,
        checkpointKeys: CHECKPOINT_KEYS,
        trackerApproximateBytes: estimate ?? null,
        regionHeapGrowth: { telemetryOn: on, telemetryOff: off },
      },
    }
  },
}
