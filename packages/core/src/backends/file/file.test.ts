import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll } from 'vitest'
import { describeBackendConformance } from '../../testing/conformance.js'
import { describeMultiProcess } from '../../testing/multiprocess.js'
import { FileBackend } from './index.js'

const root = mkdtempSync(path.join(os.tmpdir(), 'corral-file-'))
afterAll(() => rmSync(root, { recursive: true, force: true }))

describeBackendConformance('file', {
  create: async (args) => ({ backend: new FileBackend({ path: path.join(root, 'conformance'), ...args }) }),
  capabilities: { stores: true, distributedLock: true, bytes: true, sharedInvalidation: true, counters: true },
  writeRaw: async (key, bytes) => {
    const backend = new FileBackend({ path: path.join(root, 'conformance') })
    try {
      backend.store.writeRaw(key, bytes)
    } finally {
      await backend.close()
    }
  },
})

describeMultiProcess('file', {
  backend: 'file',
  arguments: () => ({ path: path.join(root, 'multi-process') }),
  invalidationBudgetMs: 250,
})
