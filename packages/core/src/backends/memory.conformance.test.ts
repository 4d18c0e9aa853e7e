import { MemoryBackend } from './memory.js'
import { describeBackendConformance } from '../testing/conformance.js'

describeBackendConformance('memory', {
  create: async () => ({ backend: new MemoryBackend() }),
  capabilities: { stores: true, distributedLock: false, counters: true },
})

describeBackendConformance('memory (serialize: true)', {
  create: async () => ({ backend: new MemoryBackend({ serialize: true }) }),
  capabilities: { stores: true, distributedLock: false, bytes: true, counters: true },
})
