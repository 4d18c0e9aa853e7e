/**
 * `startExporter()`: serves the exporter with @hono/node-server. Without an admin token it listens only on a
 * loopback address; port 0 picks a free port, and the returned `url` names the real one.
 */
import type { AddressInfo } from 'node:net'
import type { Server } from 'node:http'
import { ValidationError } from '@corral/core'
import { createAdaptorServer } from '@hono/node-server'
import { buildExporter } from './app.js'
import { isLoopbackHostname } from './auth.js'
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

  const server = createAdaptorServer({ fetch: parts.app.fetch }) as Server
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
