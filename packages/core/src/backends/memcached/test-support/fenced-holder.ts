/**
 * A lock holder in a process of its own, for the fencing tests (the parent SIGSTOPs it while it holds the lock):
 *
 *   node --conditions=@corral/source --import tsx fenced-holder.ts
 *
 * Driven over IPC. `{ op: 'hold', servers, keyPrefix, key, lockTimeout, holdMs, label }`: takes the lock of `key`
 * (one attempt), reports `{ event: 'holding', since }`, "creates" for `holdMs`, then releases storing a value
 * labelled `label` created now, and reports `{ event: 'released', stored }`. Unhandled errors are reported as
 * `{ event: 'unhandled' }`.
 */
import { CachedValue, jsonSerializer } from '../../../cached-value.js'
import { MemcachedBackend } from '../backend.js'

interface HoldRequest {
  op: 'hold'
  servers: string
  keyPrefix: string
  key: string
  lockTimeout: number
  holdMs: number
  label: string
}

const send = (message: unknown) => process.send?.(message)
const describe = (error: unknown) => (error instanceof Error ? `${error.name}: ${error.message}` : String(error))

process.on('unhandledRejection', (error) => send({ event: 'unhandled', error: describe(error) }))
process.on('uncaughtException', (error) => send({ event: 'unhandled', error: describe(error) }))
process.on('disconnect', () => process.exit(0))

process.on('message', (request: HoldRequest) => {
  void hold(request).catch((error: unknown) => send({ event: 'failed', error: describe(error) }))
})

async function hold(request: HoldRequest): Promise<void> {
  const backend = new MemcachedBackend({
    servers: request.servers,
    keyPrefix: request.keyPrefix,
    lockTimeout: request.lockTimeout,
  })
  backend.attach({
    regionName: 'fenced-holder',
    expirationTime: 60,
    serializer: jsonSerializer,
    reportError: (operation, error) => send({ event: 'backendError', operation, error: describe(error) }),
  })
  const mutex = backend.getMutex(request.key)!
  const since = Date.now()
  const { acquired } = await mutex.acquire({ wait: false })
  if (!acquired) throw new Error(`the lock of ${request.key} is taken`)
  send({ event: 'holding', since })
  await new Promise((resolve) => setTimeout(resolve, request.holdMs))
  const stored = await mutex.release({ value: CachedValue.create(request.label, Date.now()), since })
  send({ event: 'released', stored })
  await backend.close()
}

send({ event: 'started', pid: process.pid })
