/**
 * `npm start` with CORRAL_DEMO_PROCESSES=3 and REDIS_URL: three demo processes on one real Redis, one fleet. The
 * first process's exporter lists all three, shows the stampedes they share, and a clean stop leaves the fleet empty.
 */
import { spawn } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startRedis, type RedisServer } from '../../../../test-support/servers.js'
import type { FleetJson, FleetStampedesJson } from '../api-types.js'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const ROOT = path.resolve(HERE, '../../../..')
let redis: RedisServer

beforeAll(async () => {
  redis = await startRedis()
})
afterAll(async () => {
  await redis?.stop()
})

async function poll<T>(read: () => Promise<T>, check: (value: T) => boolean, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await read().catch(() => undefined)
    if (value !== undefined && check(value)) return value
    if (Date.now() > deadline)
      throw new Error(`not reached in ${timeoutMs} ms; last: ${JSON.stringify(value)?.slice(0, 1000)}`)
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}

describe('the multi-process demo', () => {
  it('runs three processes that one dashboard shows as a fleet, and stops them all', { timeout: 60_000 }, async () => {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      REDIS_URL: redis.url,
      CORRAL_DEMO_PROCESSES: '3',
      CORRAL_DEMO_RATE: '150',
      PORT: '0',
      CORRAL_ADMIN_TOKEN: '',
    }
    delete env.NODE_OPTIONS
    const demo = spawn(
      process.execPath,
      ['--conditions=@corral/source', '--import', 'tsx', path.join(HERE, 'main.ts')],
      {
        cwd: ROOT,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    )
    let output = ''
    demo.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
    demo.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
    const exited = new Promise<number | null>((resolve) => demo.once('exit', (code) => resolve(code)))
    try {
      const url = await poll(
        async () => /dashboard {2}(http:\S+)\//.exec(output)?.[1],
        (u) => u !== undefined,
        30_000,
      )
      expect(output).toMatch(/process 3 {2}http:/)
      const fleet = await poll(
        async () => (await (await fetch(`${url}/api/fleet`)).json()) as FleetJson,
        (f) => f.instances.length === 3 && f.regions.some((r) => r.name === 'inventory' && r.stats.gets > 0),
        20_000,
      )
      expect(new Set(fleet.instances.map((i) => i.pid)).size).toBe(3)
      expect(fleet.name).toBe('demo')
      // every 10 s the three processes burst on one new key of the Redis region: one incident, three processes
      const { stampedes } = await poll(
        async () => (await (await fetch(`${url}/api/fleet/stampedes`)).json()) as FleetStampedesJson,
        (s) => s.stampedes.some((i) => i.key.startsWith('stock:restock-') && i.processes.length === 3 && i.creator),
        25_000,
      )
      const incident = stampedes.find((i) => i.key.startsWith('stock:restock-') && i.processes.length === 3)!
      expect(incident.coalesced).toBe(44) // 45 callers, one of them the creator
    } finally {
      demo.kill('SIGTERM')
    }
    expect(await exited, output.slice(-3000)).toBe(0)
    expect(output).toContain('stopped after')
    const client = new Redis(redis.url)
    try {
      expect(await client.zrange('corral:fleet:{demo}:instances', 0, -1)).toEqual([])
    } finally {
      client.disconnect()
    }
  })
})
