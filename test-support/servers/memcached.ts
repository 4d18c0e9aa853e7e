/** A memcached server. */
import net from 'node:net'
import { requireBinary } from './binaries.js'
import { LOOPBACK, type HostPort } from './ports.js'
import { makeTempDir, removeDir, startOnFreePort, type ServerControls } from './processes.js'

export interface MemcachedServer extends HostPort, ServerControls {
  /** 'host:port', as memjs `Client.create()` wants it. */
  readonly servers: string
}

export interface StartMemcachedOptions {
  /** Extra memcached arguments, e.g. ['-m', '16']. */
  args?: string[]
  startTimeoutMs?: number
}

function memcachedProbe(port: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: LOOPBACK, port })
    let data = ''
    socket.setTimeout(1000, () => {
      socket.destroy()
      reject(new Error('memcached: no reply to "version"'))
    })
    socket.once('error', reject)
    socket.on('data', (chunk) => {
      data += chunk.toString('utf8')
      if (data.includes('\r\n')) {
        socket.destroy()
        resolve(data.startsWith('VERSION '))
      }
    })
    socket.write('version\r\n')
  })
}

/** Starts memcached (`-l 127.0.0.1 -p N -U 0`) on a free port; resolves once it answers `version`. */
export async function startMemcached(opts: StartMemcachedOptions = {}): Promise<MemcachedServer> {
  const bin = await requireBinary('memcached')
  const dir = await makeTempDir('memcached')
  try {
    const runAsRoot = process.getuid?.() === 0 ? ['-u', 'root'] : []
    const server = await startOnFreePort(() => ({
      what: 'memcached',
      bin,
      args: (port) => ['-l', LOOPBACK, '-p', String(port), '-U', '0', ...runAsRoot, ...(opts.args ?? [])],
      probe: memcachedProbe,
      dir,
      ownsDir: true,
      startTimeoutMs: opts.startTimeoutMs ?? 10_000,
      // memcached only acts on SIGTERM at its once-a-second clock tick, and it persists nothing.
      stopSignal: 'SIGKILL',
      stopGraceMs: 0,
    }))
    return {
      host: server.host,
      port: server.port,
      servers: `${server.host}:${server.port}`,
      get pid() {
        return server.pid
      },
      stop: () => server.stop(),
      kill: () => server.kill(),
      pause: () => server.pause(),
      resume: () => server.resume(),
      restart: () => server.restart(),
      logs: () => server.logs(),
    }
  } catch (err) {
    await removeDir(dir)
    throw err
  }
}
