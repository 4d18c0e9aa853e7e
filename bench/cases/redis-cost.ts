/**
 * Case 5 — what a cache costs Redis, and how fast a waiting process learns a value is ready.
 *
 * - Commands per hit and per miss: sequential calls on one warm key (hits) and on distinct cold keys (misses, the
 *   creator answers at once). Executed commands come from `INFO commandstats` between `CONFIG RESETSTAT` and the
 *   read (Lua scripts' inner commands included); sent commands from a MONITOR connection (script internals
 *   excluded): sent is the round-trip count unless a library pipelines. Everything the library sends meanwhile
 *   counts, background traffic included. Corral first; the peers for comparison.
 * - What tags cost a Corral read: hits on a value with TAGS_PER_VALUE tags whose marks the process already knows (as
 *   for tags in use: the goal is the one GET), first reads of values whose tags it does not know yet (the goal is
 *   one more round trip: one MGET for all of them), and untagged hits for reference. The values are written by
 *   another region instance on the same server, as another process would write them, which is closed before
 *   anything is counted. Same counting as above; latency measured without MONITOR.
 * - `getMulti` of 100 keys on Corral: how many commands it sends.
 *   Corral's miss is three commands: the hit path's GET, the lock script (which returns the value for the
 *   re-check), the release script (fenced store, delete, publish to waiters if any).
 * - Waiter latency on Corral: PROCESSES workers × CALLERS callers on a cold key; one process's creator stores the
 *   value, the others wait on the distributed lock. Latency = from the store (Corral's `regenerate` event, which
 *   fires once the release script, which stores and publishes in one step, has answered) to each waiting
 *   process's first answer, on the shared monotonic clock. The release message carries the value, so a waiting
 *   process answers with no read. Goal: p99 ≤ 2 ms on an idle machine.
 */
import { NO_VALUE } from '@corral/core'
import { REDIS_ADAPTERS, corralRedis, corralRedisRegion, type RedisAdapter } from '../lib/adapters.js'
import type { BenchCase } from '../lib/case.js'
import { countCommands, describeCalls, flushAll, totalCalls, type CommandCounts } from '../lib/redis.js'
import { callLatency, percentile } from '../lib/stats.js'
import { formatMs, type Table } from '../lib/table.js'
import { WorkerPool } from '../lib/worker-pool.js'

const HITS = 1000
const LATENCY_BATCHES = 5
const MISSES = 200
const MULTI_KEYS = 100
const TAGS_PER_VALUE = 3
/** first reads per batch (each of a value whose tags nobody has read yet) */
const FIRST_READS = 200
export const WAITER_PROCESSES = 4
export const WAITER_CALLERS = 50
/** 50 trials × 3 waiting processes: enough samples for a p99 that is not simply the maximum */
const WAITER_TRIALS = 50
export const WAITER_CREATOR_MS = 20

interface CommandCost {
  id: string
  label: string
  unavailable?: string
  hit?: CommandCounts
  miss?: CommandCounts
  /** latency of one sequential hit, ms: median over batches of HITS, measured without MONITOR attached */
  hitLatencyMs?: number
}

async function measureCommandCost(adapter: RedisAdapter, url: string): Promise<CommandCost> {
  await flushAll(url)
  let cache
  try {
    cache = await adapter.create({
      url,
      keyPrefix: `cost:${adapter.id}:`,
      ttlMs: 300_000,
      creator: async (key) => ({ key, payload: 'x'.repeat(16) }),
    })
  } catch (error) {
    return { id: adapter.id, label: adapter.label, unavailable: (error as Error).message }
  }
  try {
    await cache.getOrCreate('warm-key') // connects, and makes 'warm-key' a hit
    // Latency: median of batches after a warm-up batch; loopback round trips on a busy machine are noisy.
    const hitLatencyMs = await readLatency(HITS, () => cache.getOrCreate('warm-key'))
    const hit = await countCommands(url, async () => {
      for (let i = 0; i < HITS; i++) await cache.getOrCreate('warm-key')
    })
    const miss = await countCommands(url, async () => {
      for (let i = 0; i < MISSES; i++) await cache.getOrCreate(`cold-key-${i}`)
    })
    return { id: adapter.id, label: adapter.label, hit, miss, hitLatencyMs }
  } finally {
    await cache.close()
  }
}

interface TagCost {
  /** per row: commands for `reads` sequential reads, and the latency of one read (median of batch means, ms) */
  untaggedHit: { reads: number; commands: CommandCounts; latencyMs: number }
  knownTagsHit: { reads: number; commands: CommandCounts; latencyMs: number }
  firstRead: { reads: number; commands: CommandCounts; latencyMs: number }
}

/** Median over LATENCY_BATCHES batches (after a warm-up batch) of the mean time of `read(batch, i)`, ms. */
function readLatency(reads: number, read: (batch: number, i: number) => Promise<unknown>): Promise<number> {
  return callLatency(LATENCY_BATCHES, reads, read)
}

async function measureTagCost(url: string): Promise<TagCost | { unavailable: string }> {
  await flushAll(url)
  const options = { url, keyPrefix: 'tags:', ttlMs: 300_000 }
  const tagsOf = (name: string) => Array.from({ length: TAGS_PER_VALUE }, (_, t) => `${name}:tag-${t}`)
  // Batches 0..LATENCY_BATCHES time first reads; batch LATENCY_BATCHES + 1 is counted.
  const firstReadKey = (batch: number, i: number) => `first-${batch}-${i}`
  let writer
  try {
    writer = corralRedisRegion(options)
    await writer.set('plain', { payload: 'x'.repeat(16) })
    await writer.set('tagged', { payload: 'x'.repeat(16) }, { tags: tagsOf('shared') })
    for (let batch = 0; batch <= LATENCY_BATCHES + 1; batch++) {
      for (let i = 0; i < FIRST_READS; i++) {
        const key = firstReadKey(batch, i)
        await writer.set(key, { payload: 'x'.repeat(16) }, { tags: tagsOf(key) })
      }
    }
  } catch (error) {
    await writer?.close()
    return { unavailable: (error as Error).message }
  }
  await writer.close()

  const reader = corralRedisRegion(options)
  let creatorRuns = 0
  const read = (key: string) =>
    reader.getOrCreate(key, async () => {
      creatorRuns++
      return { payload: 'created' }
    })
  try {
    await read('plain') // connects, loads the invalidation marks
    await read('tagged') // learns the tags of 'tagged'
    const untaggedMs = await readLatency(HITS, () => read('plain'))
    const untagged = await countCommands(url, async () => {
      for (let i = 0; i < HITS; i++) await read('plain')
    })
    const knownMs = await readLatency(HITS, () => read('tagged'))
    const known = await countCommands(url, async () => {
      for (let i = 0; i < HITS; i++) await read('tagged')
    })
    const firstMs = await readLatency(FIRST_READS, (batch, i) => read(firstReadKey(batch, i)))
    const first = await countCommands(url, async () => {
      for (let i = 0; i < FIRST_READS; i++) await read(firstReadKey(LATENCY_BATCHES + 1, i))
    })
    if (creatorRuns > 0) throw new Error(`the tagged reads ran the creator ${creatorRuns} times: they were not hits`)
    return {
      untaggedHit: { reads: HITS, commands: untagged, latencyMs: untaggedMs },
      knownTagsHit: { reads: HITS, commands: known, latencyMs: knownMs },
      firstRead: { reads: FIRST_READS, commands: first, latencyMs: firstMs },
    }
  } finally {
    await reader.close()
  }
}

async function measureGetMulti(url: string): Promise<{ commands: CommandCounts } | { unavailable: string }> {
  await flushAll(url)
  let region
  try {
    region = corralRedisRegion({ url, keyPrefix: 'multi:', ttlMs: 300_000 })
  } catch (error) {
    return { unavailable: (error as Error).message }
  }
  try {
    const keys = Array.from({ length: MULTI_KEYS }, (_, i) => `multi-${i}`)
    await region.setMulti(Object.fromEntries(keys.map((key) => [key, { key }])))
    let found = 0
    const commands = await countCommands(url, async () => {
      const values = await region.getMulti(keys)
      found = values.filter((value) => value !== NO_VALUE).length
    })
    if (found !== MULTI_KEYS) throw new Error(`getMulti found ${found} of ${MULTI_KEYS} keys`)
    return { commands }
  } finally {
    await region.close()
  }
}

export interface WaiterLatency {
  /** per waiting process: store → its first answer (ms) */
  processMs: number[]
  /** per waiting caller: store → its answer (ms) */
  callerMs: number[]
  creatorRunsPerTrial: number[]
  unavailable?: string
}

export interface WaiterLatencyOptions {
  /** the adapter the worker processes use (an id of `lib/adapters.ts`) */
  adapter: string
  keyPrefix: string
  trials: number
}

/**
 * `trials` stampedes of WAITER_CALLERS callers in each of WAITER_PROCESSES processes on a new key: how long after the
 * one creator stored the value each waiting process, and each waiting caller, had it.
 */
export async function measureWaiterLatency(
  url: string,
  { adapter, keyPrefix, trials }: WaiterLatencyOptions,
): Promise<WaiterLatency> {
  const result: WaiterLatency = { processMs: [], callerMs: [], creatorRunsPerTrial: [] }
  await flushAll(url)
  const pool = await WorkerPool.start(WAITER_PROCESSES)
  try {
    await pool.setup({
      adapter,
      url,
      keyPrefix,
      ttlMs: 300_000,
      creatorMs: WAITER_CREATOR_MS,
    })
  } catch (error) {
    await pool.stop()
    return { ...result, unavailable: (error as Error).message }
  }
  try {
    for (let trial = 0; trial < trials; trial++) {
      const results = await pool.run(`waiter-key-${trial}`, WAITER_CALLERS)
      const creators = results.filter((r) => r.creatorCalls > 0)
      result.creatorRunsPerTrial.push(creators.reduce((total, r) => total + r.creatorCalls, 0))
      const storedAt = creators[0]?.storedAt[0]
      if (creators.length !== 1 || storedAt === undefined) continue // not a single-creator trial: no reference
      for (const waiting of results.filter((r) => r.creatorCalls === 0 && r.answeredAt.length > 0)) {
        result.processMs.push(Math.min(...waiting.answeredAt) - storedAt)
        result.callerMs.push(...waiting.answeredAt.map((at) => at - storedAt))
      }
    }
    await pool.teardown()
  } finally {
    await pool.stop()
  }
  return result
}

/** "sent / executed" commands per call. */
function perCall(counts: CommandCounts, calls: number): string {
  return `${+(totalCalls(counts.sent) / calls).toFixed(2)} / ${+(totalCalls(counts.executed) / calls).toFixed(2)}`
}

export const redisCostCase: BenchCase = {
  id: 'redis-cost',
  title: 'Redis cost',
  description:
    'Redis commands per hit and per miss (sent: MONITOR; executed: INFO commandstats), what tags cost a Corral read, commands for a getMulti of 100 keys, and how soon waiting processes see a stored value',
  needsRedis: true,
  async run({ redisUrl, log }) {
    const url = redisUrl!
    const costs: CommandCost[] = []
    for (const adapter of REDIS_ADAPTERS) {
      log(`  commands: ${adapter.label}`)
      costs.push(await measureCommandCost(adapter, url))
    }
    log('  tags on the read path')
    const tags = await measureTagCost(url)
    log('  getMulti')
    const multi = await measureGetMulti(url)
    log('  waiter latency')
    const waiters = await measureWaiterLatency(url, {
      adapter: corralRedis.id,
      keyPrefix: 'waiters:',
      trials: WAITER_TRIALS,
    })

    const costTable: Table = {
      title: `Redis commands per hit / per miss (${HITS} sequential hits, ${MISSES} sequential misses)`,
      header: ['library', 'per hit', 'per miss', 'hit latency', 'sent per hit', 'sent per miss'],
      rows: costs.map((c) =>
        c.unavailable
          ? [c.label, 'n/a', 'n/a', 'n/a', `not available: ${c.unavailable}`, '']
          : [
              c.label,
              perCall(c.hit!, HITS),
              perCall(c.miss!, MISSES),
              formatMs(c.hitLatencyMs!),
              describeCalls(c.hit!.sent, HITS),
              describeCalls(c.miss!.sent, MISSES),
            ],
      ),
      notes: [
        '"per hit" / "per miss": commands the client sent (MONITOR) / commands the server executed (INFO ' +
          'commandstats, which also counts the commands inside Lua scripts). Each sent command is one round trip ' +
          'unless the library pipelines. Hit latency: sequential hits on loopback, median of ' +
          `${LATENCY_BATCHES} batches of ${HITS}.`,
        'Corral per miss: GET (the hit path), EVALSHA of the lock script (SET NX PX and a GET of the value for the ' +
          're-check), EVALSHA of the release script (GET of the lock, GETRANGE of the stored header for the fence, ' +
          'SET, DEL; a PUBLISH only when another process waits). The peers take no cross-process lock.',
        ...costs.flatMap((c) =>
          c.miss && totalCalls(c.miss.executed) !== totalCalls(c.miss.sent)
            ? [`- ${c.label}, executed per miss: ${describeCalls(c.miss.executed, MISSES)}`]
            : [],
        ),
      ],
    }
    const tagRows: Array<[string, keyof TagCost]> = [
      ['hit, no tags', 'untaggedHit'],
      ['hit, tags known to this process', 'knownTagsHit'],
      ['first read, tags not known yet', 'firstRead'],
    ]
    const tagTable: Table = {
      title: `Corral on Redis: what tags cost a read (values with ${TAGS_PER_VALUE} tags; ${HITS} sequential hits, ${FIRST_READS} first reads)`,
      header: ['read', 'commands per read', 'latency', 'sent per read', 'executed per read'],
      rows:
        'unavailable' in tags
          ? [['n/a', 'n/a', 'n/a', `not available: ${tags.unavailable}`, '']]
          : tagRows.map(([label, id]) => {
              const { reads, commands, latencyMs } = tags[id]
              return [
                label,
                perCall(commands, reads),
                formatMs(latencyMs),
                describeCalls(commands.sent, reads),
                describeCalls(commands.executed, reads),
              ]
            }),
      notes: [
        '"commands per read": sent (MONITOR) / executed (INFO commandstats), as above. The values were written by ' +
          'another region instance (as by another process), so the reading process learns their tags on its first ' +
          'read of each: one MGET for all the tags it does not know yet. It keeps the tags it reads current by pub/sub ' +
          'and its poll, so later hits cost the one GET. Latency: sequential reads on loopback, median of ' +
          `${LATENCY_BATCHES} batches (of ${HITS} hits, or of ${FIRST_READS} first reads).`,
      ],
    }
    const multiRow =
      'unavailable' in multi
        ? ['n/a', 'n/a', `not available: ${multi.unavailable}`]
        : [
            String(totalCalls(multi.commands.sent)),
            String(totalCalls(multi.commands.executed)),
            describeCalls(multi.commands.sent),
          ]
    const multiTable: Table = {
      title: `Corral getMulti of ${MULTI_KEYS} keys`,
      header: ['commands sent', 'commands executed', 'which'],
      rows: [multiRow],
    }
    const waiterTable: Table = {
      title: `Corral waiter latency: store → waiting process sees the value (${WAITER_PROCESSES} processes × ${WAITER_CALLERS} callers, ${WAITER_TRIALS} trials)`,
      header: ['measured', 'samples', 'p50', 'p99', 'max'],
      rows: waiters.unavailable
        ? [['n/a', '0', 'n/a', 'n/a', `not available: ${waiters.unavailable}`]]
        : [
            ['waiting process: first answer', waiters.processMs],
            ['every waiting caller', waiters.callerMs],
          ].map(([label, samples]) => {
            const values = samples as number[]
            return [
              label as string,
              String(values.length),
              formatMs(percentile(values, 50)),
              formatMs(percentile(values, 99)),
              formatMs(percentile(values, 100)),
            ]
          }),
      notes: waiters.unavailable
        ? []
        : [`Creator runs per trial (all processes): ${waiters.creatorRunsPerTrial.join(', ')}.`],
    }
    return {
      tables: [costTable, tagTable, multiTable, waiterTable],
      data: {
        hits: HITS,
        misses: MISSES,
        costs,
        tags: { tagsPerValue: TAGS_PER_VALUE, ...tags },
        getMulti: { keys: MULTI_KEYS, ...multi },
        waiterLatency: {
          processes: WAITER_PROCESSES,
          callers: WAITER_CALLERS,
          trials: WAITER_TRIALS,
          creatorMs: WAITER_CREATOR_MS,
          processP50Ms: percentile(waiters.processMs, 50),
          processP99Ms: percentile(waiters.processMs, 99),
          callerP50Ms: percentile(waiters.callerMs, 50),
          callerP99Ms: percentile(waiters.callerMs, 99),
          callerSamples: waiters.callerMs.length,
          processMs: waiters.processMs,
          creatorRunsPerTrial: waiters.creatorRunsPerTrial,
          unavailable: waiters.unavailable,
        },
      },
    }
  },
}
