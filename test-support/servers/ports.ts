/** Free loopback ports for the servers (and the cluster bus ports beside them). */
import net from 'node:net'

export const LOOPBACK = '127.0.0.1'

export interface HostPort {
  host: string
  port: number
}

const handedOut = new Set<number>()

function listenOnce(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.unref()
    server.once('error', reject)
    server.listen({ port, host: LOOPBACK, exclusive: true }, () => {
      const address = server.address()
      const bound = typeof address === 'object' && address ? address.port : 0
      server.close(() => resolve(bound))
    })
  })
}

/** True if nothing listens on 127.0.0.1:port (checked by binding it). */
export async function isPortFree(port: number): Promise<boolean> {
  try {
    await listenOnce(port)
    return true
  } catch {
    return false
  }
}

/**
 * A free TCP port on 127.0.0.1 (bind port 0, read it, close). Never returns the same port twice in
 * one process. Another process can still grab it before the server binds; the start functions retry
 * on EADDRINUSE.
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = await listenOnce(0)
    if (!handedOut.has(port)) {
      handedOut.add(port)
      return port
    }
  }
  throw new Error('freePort: the OS kept returning ports already handed out in this process')
}

/** A port N (< 55535) such that both N and the cluster bus port N + 10000 are free. */
export async function freeClusterPort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = await listenOnce(0)
    const bus = port + 10_000
    if (port >= 55_535 || handedOut.has(port) || handedOut.has(bus)) continue
    if (!(await isPortFree(bus))) continue
    handedOut.add(port)
    handedOut.add(bus)
    return port
  }
  throw new Error('freeClusterPort: found no port N with N and N+10000 both free')
}
