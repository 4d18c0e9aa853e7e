/**
 * `startExporter()`: serves the exporter with @hono/node-server. Without an admin token it listens only on a
 * loopback address; port 0 picks a free port, and the returned `url` names the real one.
 */
import { createServer, ServerResponse, STATUS_CODES, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import { ValidationError } from '@corral/core'
import { getRequestListener, RequestError, type Http2Bindings, type HttpBindings } from '@hono/node-server'
import { buildExporter } from './app.js'
import { isLoopbackHostname } from './auth.js'
import { securityHeaderValues } from './http.js'
import type { ExporterOptions } from './options.js'

export const DEFAULT_PORT = 9464
export const DEFAULT_HOSTNAME = '127.0.0.1'

export interface StartExporterOptions extends ExporterOptions {
  /** Default 9464; 0 picks a free port. */
  port?: number
  /** Default `127.0.0.1`. A non-loopback address needs an admin token. */
  hostname?: string
  /** Milliseconds `close()` waits for requests in flight before cutting connections. Default 2000. */
  closeGraceMs?: number
}

export interface RunningExporter {
  /** `http://127.0.0.1:9464`: the address actually bound (the real port when 0 was asked for). */
  readonly url: string
  readonly port: number
  readonly hostname: string
  /** The node:http server, for advanced uses (timeouts, TLS termination in front, ...). */
  readonly server: Server
  /**
   * Ends the event streams, stops accepting connections, stops the history and leaves the fleet (its snapshot is
   * deleted), and resolves once all that is done. Idempotent.
   */
  close(): Promise<void>
}

/** Parse failures node reports with their own status. */
const CLIENT_ERRORS: Record<string, [number, string]> = {
  HPE_HEADER_OVERFLOW: [431, 'the request headers are too large'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'the request took too long to arrive'],
  ERR_HTTP_HEADERS_TIMEOUT: [408, 'the request headers took too long to arrive'],
}

function jsonAnswer(status: number, message: string, security: Record<string, string>): Response {
  return new Response(JSON.stringify({ error: message }), {
    status,
    headers: { ...security, 'content-type': 'application/json', connection: 'close' },
  })
}

/** A whole HTTP/1.1 answer, for a socket whose request node could not parse (the connection is closed after it). */
function rawAnswer(status: number, message: string, security: Record<string, string>): string {
  const body = JSON.stringify({ error: message })
  const headers = {
    ...security,
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(body)),
    connection: 'close',
  }
  const lines = Object.entries(headers).map(([name, value]) => `${name}: ${value}`)
  return `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n${lines.join('\r\n')}\r\n\r\n${body}`
}

function urlHost(hostname: string): string {
  return hostname.includes(':') && !hostname.startsWith('[') ? `[${hostname}]` : hostname
}

export async function startExporter(options: StartExporterOptions = {}): Promise<RunningExporter> {
  const { port = DEFAULT_PORT, hostname = DEFAULT_HOSTNAME, closeGraceMs = 2000, ...exporterOptions } = options ?? {}
  if (!Number.isInteger(port) || port < 0 || port > 65_535)
    throw new ValidationError(`startExporter(): port must be an integer from 0 to 65535; got ${String(port)}`)
  if (typeof hostname !== 'string' || hostname === '')
    throw new ValidationError('startExporter(): hostname must be a non-empty string')

  const parts = buildExporter(exporterOptions)
  if (parts.adminToken === undefined && !isLoopbackHostname(hostname)) {
    await parts.stopBackground()
    throw new ValidationError(
      `startExporter(): refusing to listen on "${hostname}" without an admin token: the admin API can invalidate caches. ` +
        'Set CORRAL_ADMIN_TOKEN (or the adminToken option), or listen on 127.0.0.1.',
    )
  }

  // Requests that never reach the app get JSON answers with the app's security headers too.
  const security = await securityHeaderValues()
  const listener = getRequestListener(
    async (request, env: HttpBindings | Http2Bindings) => {
      const response = await parts.app.fetch(request, env)
      // Answered before the request's body arrived (an early 413): the rest of the body is still on its way, so the
      // connection cannot carry another request. Say so (Connection: close), and node closes it after the answer.
      if (!env.incoming.complete && env.outgoing instanceof ServerResponse) env.outgoing.shouldKeepAlive = false
      return response
    },
    {
      // @hono/node-server could not make a Request of it (a malformed Host, an invalid URL): 400, not an empty body.
      errorHandler: (error: unknown) =>
        error instanceof RequestError
          ? jsonAnswer(400, `bad request: ${error.message}`, security)
          : jsonAnswer(500, 'internal error', security),
    },
  )
  const server = createServer(listener)
  // Node could not parse the request at all (a bad request line, a header with control characters): the same.
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
    if (!socket.writable || error.code === 'ECONNRESET') {
      socket.destroy()
      return
    }
    const [status, message] = CLIENT_ERRORS[error.code ?? ''] ?? [400, 'bad request: the request could not be parsed']
    socket.end(rawAnswer(status, message, security))
  })
  try {
    await new Promise<void>((resolve, reject) => {
      const onError = (error: Error) => reject(error)
      server.once('error', onError)
      server.listen(port, hostname, () => {
        server.off('error', onError)
        resolve()
      })
    })
  } catch (error) {
    await parts.stopBackground()
    throw error
  }
  const address = server.address() as AddressInfo
  const url = `http://${urlHost(hostname)}:${address.port}`

  let closing: Promise<void> | undefined
  const close = () =>
    (closing ??= new Promise<void>((resolve) => {
      parts.closeStreams()
      const background = parts.stopBackground()
      // Keep-alive sockets become idle once their response (an event stream ending now) has finished.
      const sweep = setInterval(() => server.closeIdleConnections(), 20)
      const cut = setTimeout(() => server.closeAllConnections(), closeGraceMs)
      sweep.unref()
      cut.unref()
      server.close(() => {
        clearInterval(sweep)
        clearTimeout(cut)
        void background.then(resolve)
      })
      server.closeIdleConnections()
    }))

  return { url, port: address.port, hostname, server, close }
}
