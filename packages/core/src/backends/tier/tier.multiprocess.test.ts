/**
 * Redis regions with an L1 across real processes: the multi-process suite every distributed backend passes (run
 * with the tier on), then what only an L1 has to prove: no command for repeated reads, propagation of a change in
 * milliseconds, and no old copy served after the bus connection was killed.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { redisSuite } from '../../../../../test-support/redis-suite.js'
import { reportFigure } from '../../testing/measure.js'
import { describeMultiProcess } from '../../testing/multiprocess.js'
import { percentile, startWorkers, type Worker } from '../../testing/workers.js'

const suite = redisSuite()

describeMultiProcess('redis + l1', {
  backend: 'redis',
  arguments: () => ({ url: suite.server.url, keyPrefix: 'mp-l1:' }),
  l1: true,
  invalidationBudgetMs: 250,
})

const PROCESSES = 4
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

describe(`redis + l1: ${PROCESSES} processes`, () => {
  const region = `l1-${randomUUID().slice(0, 8)}`
  let workers: Worker[] = []

  /** Every process reads `key` until it holds `value` in its L1 (two reads in a row answered by the L1). */
  const holdEverywhere = async (key: string, value: unknown) => {
    for (const w of workers) {
      await w.call('waitForValue', { region, key, value, timeoutMs: 3000 })
      for (let attempt = 0; ; attempt++) {
        const read = await w.call<{ l1: number; runs: number }>('readRepeatedly', { region, key, times: 2 })
        expect(read.runs).toBe(0)
        if (read.l1 === 2) break
        if (attempt > 50) throw new Error(`worker ${w.pid} never answered ${key} from its L1`)
        await sleep(5)
      }
    }
  }

  beforeAll(async () => {
    workers = await startWorkers(PROCESSES)
    await Promise.all(
      workers.map((w) =>
        w.call('configure', {
          region,
          backend: 'redis',
          // marks are not polled during these tests, so that every command counted comes from a read
          arguments: { url: suite.server.url, keyPrefix: 'mpt:', invalidationPollInterval: '1h' },
          expirationTime: 60,
          options: { l1: true },
        }),
      ),
    )
  })

  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop()))
  })

  it('repeated reads cost zero Redis commands in every process', async () => {
    const key = `repeated:${randomUUID()}`
    await workers[0]!.call('set', { region, key, value: 'shared' })
    await holdEverywhere(key, 'shared')
    let reads: Array<{ l1: number; l2: number; runs: number }> = []
    const commands = await suite.commandsDuring(async () => {
      reads = await Promise.all(
        workers.map((w) =>
          w.call<{ l1: number; l2: number; runs: number }>('readRepeatedly', { region, key, times: 1000 }),
        ),
      )
    })
    expect(commands).toEqual({})
    expect(reads).toEqual(workers.map(() => ({ l1: 1000, l2: 0, runs: 0 })))
  })

  it('a change in one process is seen by the others within milliseconds', async () => {
    const key = `propagation:${randomUUID()}`
    const delays: number[] = []
    for (let trial = 0; trial < 40; trial++) {
      const writer = workers[trial % PROCESSES]!
      const readers = workers.filter((w) => w !== writer)
      await writer.call('set', { region, key, value: trial })
      await holdEverywhere(key, trial)
      // The readers poll their L1 (answering the old copy) until the change reaches them.
      const seen = readers.map((w) =>
        w.call<{ seenAt: number }>('waitForValue', { region, key, value: trial + 0.5, timeoutMs: 3000 }),
      )
      await sleep(5)
      const { startedAt, doneAt } = await writer.call<{ startedAt: number; doneAt: number }>('set', {
        region,
        key,
        value: trial + 0.5,
      })
      for (const { seenAt } of await Promise.all(seen)) {
        delays.push(seenAt - startedAt)
        // Nobody saw it before the write started; the write resolves once the change is announced.
        expect(seenAt).toBeGreaterThan(startedAt)
      }
      expect(doneAt).toBeGreaterThan(startedAt)
    }
    reportFigure(`redis + l1: set in one process → seen by ${PROCESSES - 1} others (ms, ${delays.length} samples)`, {
      p50: percentile(delays, 50),
      p99: percentile(delays, 99),
      max: Math.max(...delays),
    })
    // Milliseconds; the bound leaves room for a loaded machine.
    expect(percentile(delays, 50)).toBeLessThan(25)
  })

  it('after CLIENT KILL TYPE pubsub while another process changes a key, no process serves the old copy', async () => {
    const key = `killed:${randomUUID()}`
    for (let trial = 0; trial < 5; trial++) {
      const writer = workers[trial % PROCESSES]!
      const readers = workers.filter((w) => w !== writer)
      await writer.call('set', { region, key, value: `v${trial}` })
      await holdEverywhere(key, `v${trial}`)
      // Every process loses its subscriber connection; the writer's message goes to nobody.
      expect(await suite.raw.client('KILL', 'TYPE', 'pubsub')).toBeGreaterThanOrEqual(PROCESSES)
      await writer.call('set', { region, key, value: `v${trial}-changed` })
      for (const w of readers) {
        const { value } = await w.call<{ value: unknown }>('get', { region, key })
        expect(value, `worker ${w.pid} after the kill`).toBe(`v${trial}-changed`)
      }
      // Once subscribed again, changes reach the L1s again.
      await holdEverywhere(key, `v${trial}-changed`)
    }
    for (const w of workers) expect(w.unhandled).toEqual([])
  })
})
