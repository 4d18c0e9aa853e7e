/**
 * What event-stream clients cost the cache they watch: the hits per second of a region while `clients`
 * connections read `GET /api/events?events=all` from a real exporter (every hit is an event each client receives).
 * The clients are raw sockets that count the bytes they get, so the figure is the exporter's cost, not a client's.
 */
import net from 'node:net'
import { RegionRegistry } from '@corral/core'
import { startExporter } from '../server.js'

export async function hitRateWithStreams(
  clients: number,
  durationMs = 1000,
): Promise<{ hitsPerSecond: number; bytesPerClient: number }> {
  const registry = new RegionRegistry()
  const region = registry.createRegion({ name: 'watched' }).configure('memory', { expirationTime: 60 })
  const exporter = await startExporter({
    port: 0,
    registry,
    logger: false,
    dashboard: false,
    adminToken: '',
    events: { maxClients: Math.max(1, clients) },
  })
  const sockets: net.Socket[] = []
  let bytes = 0
  try {
    await Promise.all(
      Array.from(
        { length: clients },
        () =>
          new Promise<void>((resolve, reject) => {
            const socket = net.connect(exporter.port, '127.0.0.1', () =>
              socket.write(`GET /api/events?events=all HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`),
            )
            sockets.push(socket)
            socket.once('error', reject)
            // connected once the stream's first comment arrived
            socket.once('data', () => resolve())
            socket.on('data', (chunk: Buffer) => (bytes += chunk.length))
          }),
      ),
    )
    await region.set('k', 'v')
    const creator = () => 'v'
    bytes = 0
    let hits = 0
    const started = performance.now()
    while (performance.now() - started < durationMs) {
      for (let i = 0; i < 1000; i++) await region.getOrCreate('k', creator)
      hits += 1000
      // let the server write, as a real application's event loop would between requests
      await new Promise((resolve) => setImmediate(resolve))
    }
    const hitsPerSecond = hits / ((performance.now() - started) / 1000)
    return { hitsPerSecond, bytesPerClient: clients === 0 ? 0 : bytes / clients }
  } finally {
    for (const socket of sockets) socket.destroy()
    await exporter.close()
  }
}
