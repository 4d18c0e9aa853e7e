/** The fault suite on a real redis-server of its own (killed, frozen and restarted by the outage scenarios). */
import { Redis } from 'ioredis'
import { startRedis } from '../../../../test-support/servers.js'
import { describeFaultSuite } from './faults.js'

describeFaultSuite('redis', {
  backend: 'redis',
  startServer: async () => {
    const server = await startRedis()
    const raw = new Redis(server.url, { lazyConnect: true, maxRetriesPerRequest: 1 })
    raw.on('error', () => {}) // it reconnects by itself after the server's restarts
    return {
      arguments: { url: server.url, keyPrefix: 'faults:' },
      writeRaw: async (storeKey, bytes) => {
        await raw.set(`faults:${storeKey}`, bytes)
      },
      control: server,
      close: async () => {
        raw.disconnect()
        await server.stop()
      },
    }
  },
})
