/** A `workerSetup` module for workers.test.ts: registers a backend under a name of its own, as a plugin would. */
import { MemoryBackend, registerBackend } from '@corral/core'

registerBackend('registered-by-setup', (args) => new MemoryBackend(args))
