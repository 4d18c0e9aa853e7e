/**
 * Case 7 — the file backend (LMDB, shared by the processes of one machine) against the memory and Redis backends,
 * all through Corral regions with their defaults (telemetry on, the distributed lock on where there is one).
 *
 * - Hit and miss cost: sequential awaited `getOrCreate` on HIT_KEYS warm keys (hits) and on distinct cold keys with
 *   a creator that answers at once (misses: read, lock, creator, fenced store, release). Median over ROUNDS
 *   interleaved rounds, after a warm-up round.
 * - Hit ratio under a size bound: a Zipf (s=1) sequence of RATIO_GETS gets over RATIO_KEYS keys, the first
 *   RATIO_WARMUP not counted, with room for RATIO_CAPACITY entries: memory evicts the least recently *used*, the
 *   file backend the least recently *written*, Redis keeps everything (no maxmemory: the ceiling).
 * - The size bound under a million distinct keys: BOUND_KEYS keys of ~200 bytes written (setMulti, batches of
 *   BOUND_BATCH) to a file backend bounded at BOUND_ENTRIES entries; entries, bytes, evictions and the size of the
 *   LMDB data file at checkpoints. LMDB reuses the pages it frees, so the file stops growing once the bound holds.
 */
import { statSync, mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { RegionRegistry, createRegion, type CacheRegion } from '@corral/core'
import { FileBackend } from '@corral/core/file'
import { corralRedisRegion } from '../lib/adapters.js'
import type { BenchCase } from '../lib/case.js'
import { flushAll } from '../lib/redis.js'
import { median, zipfSequence } from '../lib/stats.js'
import { formatBytes, formatMs, type Table } from '../lib/table.js'

const HIT_KEYS = 1000
const HITS = 20_000
const MISSES = 2000
const ROUNDS = 5
const RATIO_KEYS = 50_000
const RATIO_CAPACITY = 5000
const RATIO_GETS = 60_000
const RATIO_WARMUP = 20_000
const BOUND_KEYS = 1_000_000
const BOUND_ENTRIES = 100_000
const BOUND_BATCH = 1000
const BOUND_CHECKPOINTS = [100_000, 250_000, 500_000, 750_000, 1_000_000]
const TTL_SECONDS = 300

interface Backend {
  id: 'memory' | 'file' | 'redis'
  label: string
  /** A region on this backend; `capacity` bounds it where the backend has a bound. */
  region(capacity?: number): CacheRegion
}

function backends(redisUrl: string, directory: string): Backend[] {
  let n = 0
  const fresh = () => path.join(directory, `store-${n++}`)
  const registry = () => ({ registry: new RegionRegistry() })
  return [
    {
      id: 'memory',
      label: 'memory (LRU, one process)',
      region: (capacity) =>
        createRegion(registry()).configure('memory', {
          expirationTime: TTL_SECONDS,
          ...(capacity === undefined ? {} : { arguments: { maxEntries: capacity } }),
        }),
    },
    {
      id: 'file',
      label: 'file (LMDB, one machine)',
      region: (capacity) =>
        createRegion(registry()).configure('file', {
          expirationTime: TTL_SECONDS,
          arguments: { path: fresh(), ...(capacity === undefined ? {} : { maxEntries: capacity }) },
        }),
    },
    {
      id: 'redis',
      label: 'redis (loopback server)',
      region: () => corralRedisRegion({ url: redisUrl, keyPrefix: `file-case:${n++}:`, ttlMs: TTL_SECONDS * 1000 }),
    },
  ]
}

const value = (key: string) => ({ key, name: 'x'.repeat(180) })

interface Cost {
  id: string
  label: string
  hitUs: number
  missUs: number
}

async function measureCosts(list: readonly Backend[], log: (message: string) => void): Promise<Cost[]> {
  const regions = list.map((backend) => backend.region())
  const keys = Array.from({ length: HIT_KEYS }, (_, i) => `hit:${i}`)
  try {
    for (const region of regions) for (const key of keys) await region.set(key, value(key))
    const hitSamples = list.map((): number[] => [])
    const missSamples = list.map((): number[] => [])
    for (let round = 0; round <= ROUNDS; round++) {
      log(`  costs: round ${round} of ${ROUNDS}`)
      for (const [i, region] of regions.entries()) {
        let creatorRuns = 0
        const creator = (key: string) => () => {
          creatorRuns++
          return value(key)
        }
        let started = performance.now()
        for (let h = 0; h < HITS; h++) {
          const key = keys[h % HIT_KEYS]!
          await region.getOrCreate(key, creator(key))
        }
        const hitUs = ((performance.now() - started) * 1000) / HITS
        if (creatorRuns > 0) throw new Error(`${list[i]!.id}: ${creatorRuns} hits ran the creator`)
        started = performance.now()
        for (let m = 0; m < MISSES; m++) {
          const key = `miss:${round}:${m}`
          await region.getOrCreate(key, creator(key))
        }
        const missUs = ((performance.now() - started) * 1000) / MISSES
        if (creatorRuns !== MISSES)
          throw new Error(`${list[i]!.id}: ${creatorRuns} of ${MISSES} misses ran the creator`)
        if (round > 0) {
          hitSamples[i]!.push(hitUs)
          missSamples[i]!.push(missUs)
        }
      }
    }
    return list.map((backend, i) => ({
      id: backend.id,
      label: backend.label,
      hitUs: median(hitSamples[i]!),
      missUs: median(missSamples[i]!),
    }))
  } finally {
    await Promise.all(regions.map((region) => region.close()))
  }
}

interface Ratio {
  id: string
  label: string
  hitRatio: number
}

async function measureHitRatio(list: readonly Backend[], log: (message: string) => void): Promise<Ratio[]> {
  const sequence = zipfSequence(RATIO_KEYS, 1, RATIO_GETS, 7)
  const out: Ratio[] = []
  for (const backend of list) {
    log(`  hit ratio: ${backend.id}`)
    const region = backend.region(RATIO_CAPACITY)
    let misses = 0
    let counting = false
    try {
      for (let i = 0; i < RATIO_GETS; i++) {
        counting = i >= RATIO_WARMUP
        const key = `zipf:${sequence[i]}`
        await region.getOrCreate(key, () => {
          if (counting) misses++
          return value(key)
        })
      }
    } finally {
      await region.close()
    }
    out.push({ id: backend.id, label: backend.label, hitRatio: 1 - misses / (RATIO_GETS - RATIO_WARMUP) })
  }
  return out
}

interface Checkpoint {
  written: number
  entries: number
  bytes: number
  evictions: number
  fileBytes: number
  seconds: number
}

async function measureBound(directory: string, log: (message: string) => void): Promise<Checkpoint[]> {
  const backend = new FileBackend({ path: path.join(directory, 'bound'), maxEntries: BOUND_ENTRIES })
  const region = createRegion({ registry: new RegionRegistry() }).configure(backend, { expirationTime: TTL_SECONDS })
  const dataFile = path.join(backend.storeDirectory, 'data.mdb')
  const checkpoints: Checkpoint[] = []
  const started = performance.now()
  try {
    for (let written = 0; written < BOUND_KEYS;) {
      const batch: Record<string, unknown> = {}
      for (let i = 0; i < BOUND_BATCH; i++, written++) batch[`distinct:${written}`] = value(`distinct:${written}`)
      await region.setMulti(batch)
      if (BOUND_CHECKPOINTS.includes(written)) {
        const stats = backend.stats()
        checkpoints.push({
          written,
          entries: stats.entries,
          bytes: stats.bytes,
          evictions: stats.evictions,
          fileBytes: statSync(dataFile).size,
          seconds: (performance.now() - started) / 1000,
        })
        log(`  size bound: ${written} keys written, ${stats.entries} kept`)
      }
    }
    return checkpoints
  } finally {
    await region.close()
  }
}

export const fileCase: BenchCase = {
  id: 'file',
  title: 'File backend',
  description:
    'the file backend (LMDB) against the memory and Redis backends: hit and miss cost, hit ratio under a size bound, and the bound holding under a million distinct keys',
  needsRedis: true,
  async run({ redisUrl, log }) {
    const directory = mkdtempSync(path.join(os.tmpdir(), 'corral-bench-file-'))
    try {
      await flushAll(redisUrl!)
      const list = backends(redisUrl!, directory)
      const costs = await measureCosts(list, log)
      await flushAll(redisUrl!)
      const ratios = await measureHitRatio(list, log)
      const bound = await measureBound(directory, log)

      const costTable: Table = {
        title: `Cost of a hit and of a miss through a region (${HITS} sequential hits on ${HIT_KEYS} keys, ${MISSES} sequential misses; median of ${ROUNDS} rounds)`,
        header: ['backend', 'hit', 'miss', 'a miss does'],
        rows: costs.map((c) => [
          c.label,
          formatMs(c.hitUs / 1000),
          formatMs(c.missUs / 1000),
          c.id === 'memory'
            ? 'creator, store (in-process lock only)'
            : c.id === 'file'
              ? 'read, lock transaction, creator, store + release transaction'
              : 'GET, lock script (and its re-read), creator, release script (fenced SET)',
        ]),
        notes: [
          'A file hit is a lookup in the memory-mapped LMDB file (no system call) and the decoding of the value; a',
          'Redis hit is a loopback round trip. A file miss takes two write transactions (take the lock and read the',
          'value; store it fenced and release), neither flushed to disk (see the README: a store lives for one boot).',
        ],
      }
      const ratioTable: Table = {
        title: `Hit ratio with room for ${RATIO_CAPACITY} entries (Zipf s=1 over ${RATIO_KEYS} keys, ${RATIO_GETS - RATIO_WARMUP} gets after ${RATIO_WARMUP} warm-up gets)`,
        header: ['backend', 'hit ratio', 'eviction'],
        rows: ratios.map((r) => [
          r.label,
          `${(r.hitRatio * 100).toFixed(1)}%`,
          r.id === 'memory'
            ? 'least recently used'
            : r.id === 'file'
              ? 'least recently written'
              : 'none (unbounded: the ceiling)',
        ]),
        notes: [
          'The file backend does not record reads (a read would become a write transaction), so a key read often',
          'but written long ago is evicted before a key written recently: set maxEntries above the working set.',
        ],
      }
      const boundTable: Table = {
        title: `Size bound: ${BOUND_KEYS.toLocaleString('en')} distinct keys written to a file backend with maxEntries ${BOUND_ENTRIES.toLocaleString('en')}`,
        header: ['keys written', 'entries kept', 'bytes kept', 'evicted', 'data file', 'elapsed'],
        rows: bound.map((c) => [
          c.written.toLocaleString('en'),
          c.entries.toLocaleString('en'),
          formatBytes(c.bytes),
          c.evictions.toLocaleString('en'),
          formatBytes(c.fileBytes),
          `${c.seconds.toFixed(1)} s`,
        ]),
        notes: [
          'Entries and bytes stay at the bound; the data file grows until the bound is first reached, then LMDB',
          'reuses the pages that evictions free (it never shrinks the file).',
        ],
      }
      return {
        tables: [costTable, ratioTable, boundTable],
        data: {
          costs,
          hitRatio: { keys: RATIO_KEYS, capacity: RATIO_CAPACITY, gets: RATIO_GETS - RATIO_WARMUP, ratios },
          bound: { keys: BOUND_KEYS, maxEntries: BOUND_ENTRIES, checkpoints: bound },
        },
      }
    } finally {
      rmSync(directory, { recursive: true, force: true })
    }
  },
}
