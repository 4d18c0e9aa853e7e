import { ProxyBackend, RegionRegistry, ValidationError } from '@corral/core'
import { Gauge, Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import { createExporter } from './app.js'
import { fixture, memoryLogger, postJson } from './test-support/helpers.js'

class FailingDeletes extends ProxyBackend {
  override async delete(): Promise<void> {
    throw new Error('connection reset')
  }
}

describe('createExporter', () => {
  it('answers /healthz', async () => {
    const res = await fixture().app.request('/healthz')
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('application/json')
    expect(await res.text()).toBe('{"status":"ok"}')
  })

  it('answers unknown paths with 404 { error }', async () => {
    const { app } = fixture()
    for (const path of ['/nope', '/api/nope', '/api/regions/users/unknown', '/metrics/x']) {
      const res = await app.request(path)
      expect(res.status, path).toBe(404)
      expect(res.headers.get('content-type')).toBe('application/json')
      expect(await res.json()).toEqual({ error: `not found: GET ${path}` })
    }
  })

  it('answers 500 { error: "internal error" } to a failure that is not the client’s, and logs it', async () => {
    const broken = new Registry()
    new Gauge({
      name: 'broken',
      help: 'throws at scrape time',
      registers: [broken],
      collect() {
        throw new Error('collector exploded')
      },
    })
    const { app, logger } = fixture({ metricsRegistry: broken })
    const res = await app.request('/metrics')
    expect(res.status).toBe(500)
    expect(await res.json()).toEqual({ error: 'internal error' })
    expect(logger.entries).toEqual([
      {
        level: 'error',
        obj: {
          err: { name: 'Error', message: 'collector exploded', stack: expect.any(String) },
          method: 'GET',
          path: '/metrics',
        },
        msg: 'corral exporter: GET /metrics failed',
      },
    ])
  })

  it('answers 502 when the cache backend fails, and counts the action as an error', async () => {
    const registry = new RegionRegistry()
    registry.createRegion({ name: 'flaky' }).configure('memory', { wrap: [FailingDeletes] })
    const logger = memoryLogger()
    const app = createExporter({ registry, logger, dashboard: false, adminToken: '' })
    const res = await app.request('/api/regions/flaky/keys/k', { method: 'DELETE' })
    expect(res.status).toBe(502)
    expect(await res.json()).toEqual({
      error: 'the cache backend failed: region "flaky": delete failed: connection reset',
    })
    expect(logger.entries.map((e) => [e.level, e.obj.outcome ?? e.msg])).toEqual([
      ['error', 'corral exporter: DELETE /api/regions/flaky/keys/k failed'],
      ['info', 'error'],
    ])
    expect(await (await app.request('/metrics')).text()).toContain(
      'corral_admin_actions_total{action="delete_key",outcome="error"} 1',
    )
  })

  it('sends security headers on every answer', async () => {
    const res = await fixture().app.request('/api/regions')
    expect(res.headers.get('x-content-type-options')).toBe('nosniff')
    expect(res.headers.get('content-security-policy')).toContain("default-src 'self'")
  })

  it('publishes the process-wide registry by default', async () => {
    const res = await createExporter({ logger: false, dashboard: false, adminToken: '' }).request('/api/regions')
    expect(res.status).toBe(200)
    expect(await res.json()).toHaveProperty('regions')
  })

  it('writes one JSON line per admin action on stdout when no logger is given', async () => {
    const registry = new RegionRegistry()
    registry.createRegion({ name: 'r' }).configure('memory')
    const app = createExporter({ registry, dashboard: false, adminToken: '' })
    const lines: string[] = []
    const write = process.stdout.write
    process.stdout.write = ((chunk: string) => {
      lines.push(chunk)
      return true
    }) as typeof process.stdout.write
    try {
      await app.request('/api/regions/r/invalidate', postJson({ hard: true }))
    } finally {
      process.stdout.write = write
    }
    expect(lines).toHaveLength(1)
    expect(JSON.parse(lines[0] ?? '')).toMatchObject({
      level: 30,
      audit: 'corral.admin',
      action: 'invalidate',
      region: 'r',
      outcome: 'success',
      msg: 'corral admin invalidate r: success (200)',
    })
  })

  it('validates its options', () => {
    const bad: unknown[] = [
      { registry: {} },
      { metricsRegistry: {} },
      { metricsRegistry: [new Registry(), 'x'] },
      { dashboard: 42 },
      { logger: {} },
      { bodyLimit: 0 },
      { events: { heartbeatMs: -1 } },
      { events: { bufferSize: 1.5 } },
      { adminToken: 'with space' },
    ]
    for (const options of bad) {
      expect(() => createExporter(options as never), JSON.stringify(options)).toThrow(ValidationError)
    }
  })
})
