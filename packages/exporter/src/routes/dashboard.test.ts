import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { ValidationError } from '@corral/core'
import { Hono } from 'hono'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createExporter } from '../app.js'
import { fixture } from '../test-support/helpers.js'
import { defaultDashboardDir } from './dashboard.js'

let tmp: string
let dist: string
const INDEX = '<!doctype html><title>dash</title><script type="module" src="./assets/app-1234.js"></script>'

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'corral-dashboard-test-'))
  dist = path.join(tmp, 'dist')
  await mkdir(path.join(dist, 'assets'), { recursive: true })
  await writeFile(path.join(dist, 'index.html'), INDEX)
  await writeFile(path.join(dist, 'assets', 'app-1234.js'), 'console.log("dash")')
  await writeFile(path.join(dist, 'assets', 'app-1234.css'), 'body{}')
  await writeFile(path.join(dist, 'assets', 'icon.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>')
  await writeFile(path.join(dist, 'robots.txt'), 'User-agent: *')
  await writeFile(path.join(dist, '.env'), 'SECRET=1')
  await writeFile(path.join(tmp, 'outside.txt'), 'outside the dashboard')
  await symlink(path.join(tmp, 'outside.txt'), path.join(dist, 'escape.txt'))
})

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true })
})

const app = () => fixture({ dashboard: dist }).app

describe('the dashboard', () => {
  it('serves index.html at /', async () => {
    const res = await app().request('/')
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8')
    expect(res.headers.get('cache-control')).toBe('no-cache')
    expect(await res.text()).toBe(INDEX)
    expect(await (await app().request('/index.html')).text()).toBe(INDEX)
  })

  it('serves assets with their content types, cached for a year', async () => {
    const cases: Array<[string, string]> = [
      ['/assets/app-1234.js', 'text/javascript; charset=utf-8'],
      ['/assets/app-1234.css', 'text/css; charset=utf-8'],
      ['/assets/icon.svg', 'image/svg+xml; charset=utf-8'],
    ]
    for (const [file, type] of cases) {
      const res = await app().request(file)
      expect(res.status, file).toBe(200)
      expect(res.headers.get('content-type')).toBe(type)
      expect(res.headers.get('cache-control')).toBe('public, max-age=31536000, immutable')
    }
    const robots = await app().request('/robots.txt')
    expect(robots.headers.get('content-type')).toBe('text/plain; charset=utf-8')
    expect(robots.headers.get('cache-control')).toBe('no-cache')
  })

  it('sends security headers with a CSP that allows only its own scripts and styles', async () => {
    const res = await app().request('/')
    expect(res.headers.get('content-security-policy')).toBe(
      "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
    )
    expect(res.headers.get('x-content-type-options')).toBe('nosniff')
    expect(res.headers.get('x-frame-options')).toBe('DENY')
    expect(res.headers.get('referrer-policy')).toBe('no-referrer')
    expect(res.headers.get('strict-transport-security')).toBeNull()
  })

  it('falls back to index.html for page navigations (client-side routes), not for missing files', async () => {
    const page = await app().request('/regions/users', { headers: { accept: 'text/html,application/xhtml+xml' } })
    expect(page.status).toBe(200)
    expect(await page.text()).toBe(INDEX)
    const missing = await app().request('/assets/nope.js')
    expect(missing.status).toBe(404)
    expect(await missing.json()).toEqual({ error: 'not found: GET /assets/nope.js' })
  })

  it('never serves files outside its directory, dotfiles, or symlinks leading out', async () => {
    const attempts = [
      '/../outside.txt',
      '/%2e%2e/outside.txt',
      '/assets/..%2F..%2Foutside.txt',
      '/assets%2F..%2F..%2Foutside.txt',
      '/..%5Coutside.txt',
      '/.env',
      '/%2Eenv',
      '/escape.txt',
      '/assets/%00.js',
      '/%E0%A4%A',
    ]
    for (const attempt of attempts) {
      const res = await app().request(attempt)
      expect(res.status, attempt).toBe(404)
      expect(await res.text()).not.toContain('outside the dashboard')
    }
  })

  it('never answers /api paths with the dashboard', async () => {
    const res = await app().request('/api/nope', { headers: { accept: 'text/html' } })
    expect(res.status).toBe(404)
    expect(res.headers.get('content-type')).toBe('application/json')
  })

  it('answers HEAD', async () => {
    const res = await app().request('/', { method: 'HEAD' })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8')
  })

  it('explains how to build it when the directory has no index.html', async () => {
    const empty = path.join(tmp, 'empty')
    await mkdir(empty, { recursive: true })
    const res = await fixture({ dashboard: empty }).app.request('/')
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8')
    const html = await res.text()
    expect(html).toContain('The dashboard is not built.')
    expect(html).toContain('npm run build')
  })

  it('can be turned off', async () => {
    const res = await fixture({ dashboard: false }).app.request('/')
    expect(res.status).toBe(404)
    expect(await res.json()).toEqual({ error: 'not found: GET /' })
  })

  it('refuses a dashboard directory that does not exist', () => {
    expect(() => createExporter({ dashboard: path.join(tmp, 'missing'), logger: false })).toThrow(ValidationError)
  })

  it('defaults to the @corral/dashboard package dist/', () => {
    expect(defaultDashboardDir()).toBe(path.resolve(import.meta.dirname, '../../../dashboard/dist'))
  })
})

describe('the dashboard, mounted under a prefix', () => {
  it('serves its files and the API below the prefix', async () => {
    const outer = new Hono()
    outer.route('/corral', fixture({ dashboard: dist }).app)
    expect(await (await outer.request('/corral/')).text()).toBe(INDEX)
    const bare = await outer.request('/corral')
    expect(bare.status).toBe(308)
    expect(bare.headers.get('location')).toBe('/corral/')
    const asset = await outer.request('/corral/assets/app-1234.js')
    expect(asset.headers.get('content-type')).toBe('text/javascript; charset=utf-8')
    expect((await outer.request('/corral/api/regions')).status).toBe(200)
    expect((await outer.request('/corral/metrics')).status).toBe(200)
    expect((await outer.request('/corral/../outside.txt')).status).toBe(404)
  })
})
