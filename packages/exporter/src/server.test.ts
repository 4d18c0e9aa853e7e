import net from 'node:net'
import { RegionRegistry, ValidationError } from '@corral/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startExporter, type RunningExporter } from './server.js'
import { memoryLogger } from './test-support/helpers.js'

/** Sends `text` on a new connection and returns everything the server answered until it closed the connection. */
function rawExchange(port: number, text: string, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(text))
    let answer = ''
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`the connection stayed open; got: ${answer}`))
    }, timeoutMs)
    socket.on('data', (chunk) => (answer += chunk.toString('latin1')))
    socket.on('error', () => {})
    socket.on('close', () => {
      clearTimeout(timer)
      resolve(answer)
    })
  })
}

/** Status, lower-cased headers and body of a raw HTTP/1.1 answer. */
function parseAnswer(answer: string) {
  const [head = '', body = ''] = answer.split('\r\n\r\n')
  const [statusLine = '', ...lines] = head.split('\r\n')
  const headers = Object.fromEntries(
    lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]),
  )
  return { status: Number(statusLine.split(' ')[1]), headers, body }
}

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

describe('startExporter under abuse', () => {
  let exporter: RunningExporter
  const logger = memoryLogger()

  beforeAll(async () => {
    const registry = new RegionRegistry()
    registry.createRegion({ name: 'users' }).configure('memory', { expirationTime: 5 })
    exporter = await startExporter({ port: 0, registry, logger, dashboard: false, adminToken: '' })
  })

  afterAll(async () => {
    await exporter.close()
  })

  it('answers requests rejected before the app (a malformed Host, an unparseable request) with JSON and the security headers', async () => {
    const requests = [
      'GET /api/regions HTTP/1.1\r\nHost: [bad\r\n\r\n',
      'GET /api/regions HTTP/1.1\r\nHost: exa mple\r\n\r\n',
      'NOT HTTP AT ALL\r\n\r\n',
      'GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Bad: a\u0001b\r\n\r\n',
    ]
    for (const request of requests) {
      const { status, headers, body } = parseAnswer(await rawExchange(exporter.port, request))
      expect(status, request).toBe(400)
      expect(headers['content-type']).toBe('application/json')
      expect(headers['x-content-type-options']).toBe('nosniff')
      expect(headers['x-frame-options']).toBe('DENY')
      expect(headers['referrer-policy']).toBe('no-referrer')
      expect(headers['content-security-policy']).toContain("frame-ancestors 'none'")
      expect(headers.connection).toBe('close')
      expect(JSON.parse(body)).toEqual({ error: expect.stringMatching(/^bad request/) })
    }
    // headers too large: 431, the same way
    const huge = parseAnswer(
      await rawExchange(exporter.port, `GET / HTTP/1.1\r\nHost: localhost\r\nX: ${'a'.repeat(20_000)}\r\n\r\n`),
    )
    expect(huge.status).toBe(431)
    expect(huge.headers['x-content-type-options']).toBe('nosniff')
    expect(JSON.parse(huge.body)).toEqual({ error: 'the request headers are too large' })
  })

  it('does not log a client that goes away while sending its body as an internal error', async () => {
    const before = logger.entries.length
    await new Promise<void>((resolve) => {
      const socket = net.connect(exporter.port, '127.0.0.1', () => {
        socket.write(
          'POST /api/regions/users/invalidate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n' +
            'Content-Length: 1000\r\n\r\n{"hard":',
        )
        setTimeout(() => {
          socket.destroy()
          resolve()
        }, 100)
      })
    })
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(logger.entries.slice(before).filter((e) => e.level === 'error')).toEqual([])
    expect((await fetch(`${exporter.url}/healthz`)).status).toBe(200)
  })

  it('closes the connection after an early 413, so a keep-alive client does not send its next request on it', async () => {
    for (let round = 0; round < 10; round++) {
      for (const size of [17_000, 1_000_000]) {
        const tooLarge = await fetch(`${exporter.url}/api/regions/users/keys/k`, {
          method: 'DELETE',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ pad: 'x'.repeat(size) }),
        })
        expect(tooLarge.status).toBe(413)
        expect(tooLarge.headers.get('connection')).toBe('close')
        expect(await tooLarge.json()).toEqual({ error: 'the body is larger than 16384 bytes' })
        // the next request of this client (the same keep-alive pool) works
        const next = await fetch(`${exporter.url}/healthz`)
        expect(next.status).toBe(200)
        expect(next.headers.get('connection')).toBe('keep-alive')
        await next.body?.cancel()
      }
    }
  })
})
