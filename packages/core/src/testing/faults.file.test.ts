/**
 * The fault suite on the file backend: a store directory of its own, shared by the worker processes. It has no
 * server to kill or freeze, so the outage scenarios do not apply; the others (lock holders killed or frozen,
 * creators that hang or throw, corrupt records under keys in use) run as on Redis and memcached.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { FileBackend } from '../backends/file/index.js'
import { describeFaultSuite } from './faults.js'

describeFaultSuite('file', {
  backend: 'file',
  outages: false,
  startServer: async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'corral-faults-file-'))
    // A process of its own that writes what another program would: our record around garbage bytes.
    const writer = new FileBackend({ path: dir })
    return {
      arguments: { path: dir },
      writeRaw: async (storeKey, bytes) => writer.store.writeRaw(storeKey, bytes, { header: true }),
      close: async () => {
        await writer.close()
        rmSync(dir, { recursive: true, force: true })
      },
    }
  },
})
