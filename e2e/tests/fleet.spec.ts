/**
 * The fleet view: a real Redis, this test process and two forked processes, each with an exporter publishing to one
 * fleet; the page is served by this process's exporter.
 */
import { randomUUID } from 'node:crypto'
import { RegionRegistry, type CacheRegion } from '@corral/core'
import { startExporter, type RunningExporter } from '@corral/exporter'
import { startRedis, type RedisServer } from '../../test-support/servers.js'
import { FleetWorker } from '../../packages/exporter/src/test-support/fleet-workers.js'
import { expect, test } from './fixtures.js'

const FLEET_NAME = `e2e-${randomUUID().slice(0, 8)}`
let redis: RedisServer
let workers: FleetWorker[] = []
let exporter: RunningExporter
let registry: RegionRegistry
let catalog: CacheRegion
let localRuns = 0

test.describe.configure({ mode: 'serial' })

test.beforeAll(async () => {
  test.setTimeout(90_000)
  redis = await startRedis()
  const env = { REDIS_URL: redis.url, FLEET_NAME, FLEET_INTERVAL: 0.3 }
  workers = await Promise.all([FleetWorker.start(env), FleetWorker.start(env)])
  registry = new RegionRegistry()
  // the workers' region: same name, same Redis, same key prefix, so the distributed lock is shared
  catalog = registry.createRegion({ name: 'catalog' }).configure('redis', {
    expirationTime: 60,
    arguments: { url: redis.url, keyPrefix: `${FLEET_NAME}:` },
  })
  exporter = await startExporter({
    port: 0,
    registry,
    logger: false,
    adminToken: '',
    fleet: { redis: redis.url, name: FLEET_NAME, interval: 0.3 },
    history: { interval: '200ms' },
  })
})

test.afterAll(async () => {
  await exporter?.close()
  await registry?.close()
  await Promise.all(workers.map((w) => w.stop()))
  await redis?.stop()
})

test('switches to the fleet and lists every process with its last-seen time', async ({ page }) => {
  await page.goto(exporter.url)
  await expect(page.getByTestId('scope-process')).toHaveAttribute('aria-pressed', 'true')
  await page.getByTestId('scope-fleet').click()
  await expect(page.getByTestId('scope-fleet')).toHaveAttribute('aria-pressed', 'true')
  const rows = page.getByTestId('fleet-instance')
  await expect(rows).toHaveCount(3)
  const pids = await rows.evaluateAll((els) => els.map((el) => Number(el.getAttribute('data-pid'))).sort())
  expect(pids).toEqual([process.pid, ...workers.map((w) => w.pid)].sort())
  await expect(rows.first().getByTestId('last-seen')).toHaveText(/just now|\d+ s ago/)

  // traffic in one worker shows up in the fleet's summed region row
  await workers[0]!.call('traffic', { gets: [['e2e:fleet-key', 12]] })
  await expect(page.getByTestId('region-row-catalog')).toContainText('12')

  await page.getByTestId('scope-process').click()
  await expect(page.getByTestId('fleet-instances')).toBeHidden()
})

test('shows a stampede across processes once, with the callers that waited in each process', async ({ page }) => {
  await page.goto(exporter.url)
  await page.getByTestId('scope-fleet').click()
  await expect(page.getByTestId('fleet-instance')).toHaveCount(3)

  const key = 'e2e:stampede'
  const local = Promise.all(
    Array.from({ length: 10 }, () =>
      catalog.getOrCreate(key, async () => {
        localRuns++
        await new Promise((resolve) => setTimeout(resolve, 600))
        return 'made here'
      }),
    ),
  )
  const remote = workers.map((w) => w.call<{ runs: number }>('stampede', { key, callers: 10, creatorMs: 600 }))
  const [, ...results] = await Promise.all([local, ...remote])
  expect(localRuns + results.reduce((sum, r) => sum + r.runs, 0)).toBe(1)

  const incident = page.locator(`[data-testid="incident"][data-key="${key}"]`)
  await expect(incident).toHaveCount(1)
  const chips = incident.getByTestId('incident-process')
  await expect(chips).toHaveCount(3)
  await expect(incident.locator('[data-role="creator"]')).toHaveAttribute('data-coalesced', '9')
  const waiters = incident.locator('[data-role="waiter"]')
  await expect(waiters).toHaveCount(2)
  for (const waiter of await waiters.all()) {
    await expect(waiter).toHaveAttribute('data-coalesced', '10')
    await expect(waiter).toContainText('10 waited')
  }
  await expect(incident).toContainText('29')
})

test('has its charts full right after a reload, from the history the exporter keeps', async ({ page }) => {
  test.setTimeout(60_000)
  // twelve seconds of traffic, with slow regenerations, before the page is (re)loaded
  const until = Date.now() + 12_000
  let i = 0
  while (Date.now() < until) {
    await catalog.getOrCreate(`e2e:chart-${i++ % 40}`, async () => {
      await new Promise((resolve) => setTimeout(resolve, 30))
      return i
    })
    await catalog.getOrCreate('e2e:chart-hot', () => 'hot')
  }
  await page.goto(exporter.url)
  await page.reload()
  const loaded = Date.now()
  const gets = page.getByTestId('chart-gets')
  // the page has had no time to collect samples of its own: what it shows is the server's history
  await expect(gets).toHaveAttribute('data-points', /^([2-9]|\d\d+)$/, { timeout: 3000 })
  expect(Number(await gets.getAttribute('data-samples'))).toBeGreaterThanOrEqual(40)
  await expect(page.getByTestId('chart-latency').getByTestId('legend-regeneration p99')).toContainText(
    /\d+(\.\d+)? ?ms/,
  )
  expect(Date.now() - loaded).toBeLessThan(3000)

  await page.getByTestId('range-select').selectOption('1h')
  await expect(page.getByTestId('chart-gets')).toHaveAttribute('data-samples', /^\d{2,}$/)
})
