/** The fault suite on a real memcached of its own (killed, frozen and restarted by the outage scenarios). */
import memjs from 'memjs'
import { startMemcached } from '../../../../test-support/servers.js'
import { MemcachedBackend } from '../backends/memcached/index.js'
import { describeFaultSuite } from './faults.js'

describeFaultSuite('memcached', {
  backend: 'memcached',
  startServer: async () => {
    const server = await startMemcached()
    const raw = memjs.Client.create(server.servers, { logger: { log: () => {} } })
    // Where the backend stores a key (its prefix, and SHA-1 for keys memcached cannot hold).
    const naming = new MemcachedBackend({ servers: server.servers, keyPrefix: 'faults:' })
    return {
      arguments: { servers: server.servers, keyPrefix: 'faults:' },
      writeRaw: async (storeKey, bytes) => {
        await raw.set(naming.keyFor(storeKey), bytes, {})
      },
      control: server,
      close: async () => {
        raw.close()
        await naming.close()
        await server.stop()
      },
    }
  },
})
