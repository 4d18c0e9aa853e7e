import { RegionRegistry, ValidationError } from '@corral/core'
import { describe, expect, it } from 'vitest'
import { startExporter } from './server.js'
import { memoryLogger } from './test-support/helpers.js'

describe('startExporter', () => {
  it('listens on port 0, reports the real URL, serves, and closes its event streams on close()', async () => {
    const registry = new RegionRegistry()
    registry.createRegion({ name: 'users' }).configure('memory', { expirationTime: 5 })
    const logger = memoryLogger()
    const exporter = await startExporter({ port: 0, registry, logger, dashboard: false, adminToken: '' })
    let closed = false
    try {
      expect(exporter.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
      expect(exporter.port).toBeGreaterThan(0)
      expect(exporter.url).toBe(`http://127.0.0.1:${exporter.port}`)

      const health = await fetch(`${exporter.url}/healthz`)
      expect(health.status).toBe(200)
      expect(await health.json()).toEqual({ status: 'ok' })

      // the audit log has the client address once there is a real socket
      const res = await fetch(`${exporter.url}/api/regions/users/invalidate`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', origin: exporter.url },
        body: '{"hard":false}',
      })
      expect(res.status).toBe(200)
      expect(logger.entries[0]?.obj.client).toEqual({ address: '127.0.0.1', token: 'none' })

      // a key with an encoded slash and unicode, through a real HTTP stack
      const del = await fetch(`${exporter.url}/api/regions/users/keys/${encodeURIComponent('a/b café')}`, {
        method: 'DELETE',
      })
      expect(await del.json()).toEqual({ region: 'users', key: 'a/b café' })

      // the same port again: EADDRINUSE rejects
      await expect(startExporter({ port: exporter.port, registry, logger: false, dashboard: false })).rejects.toThrow(
        /EADDRINUSE/,
      )

      const events = await fetch(`${exporter.url}/api/events`)
      expect(events.headers.get('content-type')).toBe('text/event-stream')
      const reader = events.body!.pipeThrough(new TextDecoderStream()).getReader()
      expect((await reader.read()).value).toBe(': connected\n\n')
      const started = Date.now()
      await exporter.close()
      closed = true
      let rest = ''
      for (;;) {
        const { value, done } = await reader.read()
        if (done) break
        rest += value
      }
      expect(rest).toBe('')
      expect(Date.now() - started).toBeLessThan(1500)
      await exporter.close() // idempotent
      await expect(fetch(`${exporter.url}/healthz`)).rejects.toThrow()
    } finally {
      if (!closed) await exporter.close()
    }
  })

  it('refuses a non-loopback address without an admin token, before listening', async () => {
    for (const hostname of ['0.0.0.0', '::', '192.168.1.10', 'example.com']) {
      const start = startExporter({ port: 0, hostname, logger: false, dashboard: false, adminToken: '' })
      await expect(start, hostname).rejects.toThrow(ValidationError)
      await expect(start).rejects.toThrow(/refusing to listen on .* without an admin token/)
    }
  })

  it('validates the port and hostname', async () => {
    for (const port of [-1, 65_536, 1.5, Number.NaN]) {
      await expect(startExporter({ port, logger: false, dashboard: false })).rejects.toThrow(ValidationError)
    }
    await expect(startExporter({ hostname: '', logger: false, dashboard: false })).rejects.toThrow(ValidationError)
  })
})
