import net from 'node:net'
import { createRegion } from '@corral/core'
import { expect, test } from './fixtures.js'

/** A loopback port nothing listens on: a Redis that is down. */
async function closedPort(): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as net.AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

test.describe('the Corral dashboard', () => {
  test('lists every region, live', async ({ page, app }) => {
    await page.goto(app.url)
    await expect(page.getByTestId('connection-state')).toHaveText('live')
    await expect(page.getByTestId('region-row-users')).toBeVisible()
    await expect(page.getByTestId('region-row-products')).toBeVisible()
    await expect(page.getByTestId('region-row-users')).toContainText('memory')
  })

  test('shows the keys the test made hot', async ({ page, app }) => {
    await page.goto(app.url)
    for (let i = 0; i < 40; i++) await app.users.getOrCreate('user:hot-1', app.creator('user:hot-1'))
    for (let i = 0; i < 25; i++) await app.users.getOrCreate('user:hot-2', app.creator('user:hot-2'))
    await app.users.getOrCreate('user:cold', app.creator('user:cold'))

    const hotKeys = page.getByTestId('hot-keys-users').getByTestId('hot-key')
    await expect(hotKeys.first()).toContainText('user:hot-1')
    await expect(hotKeys.nth(1)).toContainText('user:hot-2')
    await expect(hotKeys.first()).toContainText('40')
    // 63 of the 66 reads were answered from process memory (a memory region's hits are all L1 hits)
    await expect(page.getByTestId('l1-hit-ratio-users')).toHaveText('95.4%')
  })

  test('counts the stampede the test caused as stampedes prevented', async ({ page, app }) => {
    await page.goto(app.url)
    const prevented = page.getByTestId('stampedes-prevented-products')
    await expect(prevented).toHaveText('0')

    // 30 callers on one cold key with a slow creator: one runs it, 29 are coalesced onto it.
    const callers = Array.from({ length: 30 }, () =>
      app.products.getOrCreate('product:42', app.creator('product:42', 300)),
    )
    const values = await Promise.all(callers)
    expect(new Set(values)).toEqual(new Set(['value of product:42']))
    expect(app.creatorRuns.get('product:42')).toBe(1)

    await expect(prevented).toHaveText('29')
    await expect(page.getByTestId('stampedes')).toContainText('product:42')
  })

  test('invalidates a region hard after confirmation: the next getOrCreate regenerates', async ({
    page,
    app,
    request,
  }) => {
    await app.users.getOrCreate('user:7', app.creator('user:7'))
    await app.users.getOrCreate('user:7', app.creator('user:7'))
    expect(app.creatorRuns.get('user:7')).toBe(1)

    await page.goto(app.url)
    await page.getByTestId('invalidate-hard-users').click()
    await expect(page.getByRole('dialog')).toContainText('users')
    await page.getByTestId('confirm-invalidate').click()
    await expect(page.getByTestId('invalidate-feedback')).toHaveAttribute('data-kind', 'success')

    await app.users.getOrCreate('user:7', app.creator('user:7'))
    expect(app.creatorRuns.get('user:7')).toBe(2)
    const region = await (await request.get(`${app.url}/api/regions/users`)).json()
    expect(region.stats.invalidations.hard).toBe(1)
    expect(region.lastInvalidation).toMatchObject({ hard: true, scope: 'region' })
  })

  test('does not invalidate when the confirmation is cancelled', async ({ page, app }) => {
    await app.users.getOrCreate('user:8', app.creator('user:8'))
    await page.goto(app.url)
    await page.getByTestId('invalidate-hard-users').click()
    await page.keyboard.press('Escape')
    await expect(page.getByRole('dialog')).toBeHidden()
    await app.users.getOrCreate('user:8', app.creator('user:8'))
    expect(app.creatorRuns.get('user:8')).toBe(1)
    expect(app.users.statsSnapshot().invalidations.hard).toBe(0)
  })

  test('soft invalidation serves stale values while one caller regenerates', async ({ page, app }) => {
    await app.users.getOrCreate('user:9', app.creator('user:9'))
    await page.goto(app.url)
    await page.getByTestId('invalidate-soft-users').click()
    await page.getByTestId('confirm-invalidate').click()
    await expect(page.getByTestId('invalidate-feedback')).toHaveAttribute('data-kind', 'success')

    const slow = app.users.getOrCreate('user:9', app.creator('user:9', 200))
    expect(await app.users.getOrCreate('user:9', app.creator('user:9'))).toBe('value of user:9')
    await slow
    expect(app.creatorRuns.get('user:9')).toBe(2)
    expect(app.users.statsSnapshot().stale).toBe(1)
  })

  test('invalidates a tag after confirmation: tagged values regenerate, the others do not', async ({
    page,
    app,
    request,
  }) => {
    const read = (key: string, tags?: string[]) =>
      app.users.getOrCreate(key, app.creator(key), tags ? { tags } : undefined)
    await read('user:5:profile', ['user:5'])
    await read('user:5:feed', ['user:5', 'feeds'])
    await read('user:6:profile', ['user:6'])
    await read('user:5:untagged')
    for (const key of ['user:5:profile', 'user:5:feed', 'user:6:profile', 'user:5:untagged']) {
      await read(key)
      expect(app.creatorRuns.get(key), key).toBe(1)
    }

    await page.goto(app.url)
    await page.getByTestId('invalidate-tags-users').click()
    const dialog = page.getByRole('dialog')
    await expect(dialog).toContainText('users')
    await expect(page.getByTestId('tags-input')).toBeFocused()
    await expect(page.getByTestId('tags-hard')).toBeChecked()
    // keyboard only: type the tag, submit with Enter
    await page.keyboard.type('user:5')
    await page.keyboard.press('Enter')
    const feedback = page.getByTestId('invalidate-feedback')
    await expect(feedback).toHaveAttribute('data-kind', 'success')
    await expect(feedback).toContainText('tag “user:5” in “users”')
    await expect(dialog).toBeHidden()

    await read('user:5:profile', ['user:5'])
    await read('user:5:feed', ['user:5', 'feeds'])
    await read('user:6:profile', ['user:6'])
    await read('user:5:untagged')
    expect(app.creatorRuns.get('user:5:profile')).toBe(2)
    expect(app.creatorRuns.get('user:5:feed')).toBe(2)
    expect(app.creatorRuns.get('user:6:profile')).toBe(1)
    expect(app.creatorRuns.get('user:5:untagged')).toBe(1)
    const region = await (await request.get(`${app.url}/api/regions/users`)).json()
    expect(region.stats.invalidations).toEqual({ hard: 1, soft: 0 })
    expect(region.lastInvalidation).toMatchObject({ hard: true, scope: 'tag' })
  })

  test('checks the tags typed before sending, and sends soft tag invalidations with the token', async ({
    page,
    securedApp,
  }) => {
    await securedApp.users.getOrCreate('user:5:profile', securedApp.creator('user:5:profile'), { tags: ['user:5'] })
    await page.goto(securedApp.url)
    await page.getByTestId('token-input').fill(securedApp.token)
    await page.getByTestId('token-submit').click()
    await expect(page.getByTestId('connection-state')).toHaveText('live')

    await page.getByTestId('invalidate-tags-users').click()
    await page.getByTestId('tags-input').fill(' , ')
    await page.getByTestId('confirm-invalidate-tags').click()
    await expect(page.getByTestId('tags-error')).toHaveText('Enter at least one tag.')
    await expect(page.getByRole('dialog')).toBeVisible()
    expect(securedApp.users.statsSnapshot().invalidations).toEqual({ hard: 0, soft: 0 })

    await page.getByTestId('tags-input').fill('user:5, feeds, user:5')
    await page.getByTestId('tags-hard').uncheck()
    await expect(page.getByTestId('confirm-invalidate-tags')).toHaveText('Invalidate tags (soft)')
    await page.getByTestId('confirm-invalidate-tags').click()
    await expect(page.getByTestId('invalidate-feedback')).toHaveAttribute('data-kind', 'success')
    await expect(page.getByTestId('invalidate-feedback')).toContainText(
      'Soft invalidation of tags “user:5” and “feeds”',
    )
    expect(securedApp.users.statsSnapshot().invalidations).toEqual({ hard: 0, soft: 2 })

    // soft: the stale value is served while one caller regenerates
    const slow = securedApp.users.getOrCreate('user:5:profile', securedApp.creator('user:5:profile', 200), {
      tags: ['user:5'],
    })
    expect(await securedApp.users.getOrCreate('user:5:profile', securedApp.creator('user:5:profile'))).toBe(
      'value of user:5:profile',
    )
    await slow
    expect(securedApp.creatorRuns.get('user:5:profile')).toBe(2)
  })

  test('asks for the token, shows the error for a wrong one, and works with the right one', async ({
    page,
    securedApp,
  }) => {
    await page.goto(securedApp.url)
    await expect(page.getByTestId('connection-state')).toHaveText('unauthorized')
    await page.getByTestId('token-input').fill('not-the-token')
    await page.getByTestId('token-submit').click()
    await expect(page.getByTestId('auth-error')).toBeVisible()
    await expect(page.getByTestId('auth-error')).toContainText(/reject/i)

    await page.getByTestId('token-input').fill(securedApp.token)
    await page.getByTestId('token-submit').click()
    await expect(page.getByTestId('connection-state')).toHaveText('live')
    await expect(page.getByTestId('region-row-users')).toBeVisible()
  })

  test('renders keys as text, never as HTML', async ({ page, app }) => {
    const hostile = '<img src=x onerror="window.__pwned=1">'
    for (let i = 0; i < 5; i++) await app.users.getOrCreate(hostile, app.creator('hostile'))
    await page.goto(app.url)
    await expect(page.getByTestId('hot-keys-users').getByTestId('hot-key').first()).toContainText('<img src=x')
    expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined()
  })

  test('shows the circuit breaker of a region whose Redis is down, and none for the healthy regions', async ({
    page,
    app,
  }) => {
    const inventory = createRegion({ name: 'inventory', registry: app.registry }).configure('redis', {
      expirationTime: 60,
      arguments: { port: await closedPort(), commandTimeout: 0.2 },
      circuitBreaker: { failures: 2, coolDown: '10m' },
    })
    try {
      await page.goto(app.url)
      await expect(page.getByTestId('region-row-inventory')).toBeVisible()
      await expect(page.getByTestId('circuit-inventory')).toHaveCount(0)
      // Every call still answers from its creator; two failures in a row open the circuit.
      for (let i = 0; i < 3; i++) expect(await inventory.getOrCreate(`sku:${i}`, () => `stock ${i}`)).toBe(`stock ${i}`)
      const badge = page.getByTestId('circuit-inventory')
      await expect(badge).toHaveText('circuit open')
      await expect(badge).toHaveAttribute('data-state', 'open')
      await expect(page.getByTestId('circuit-users')).toHaveCount(0)
    } finally {
      await inventory.close()
    }
  })
})
