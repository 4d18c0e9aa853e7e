/**
 * A child process for the crash tests: writes to the file backend at `argv[2]` without pause (large batches, a
 * counter, locks taken and released with a value) until it is killed. Tells its parent once it has written a
 * first batch, so the parent can kill it in the middle of the next ones.
 *
 *   node --conditions=@corral/source --import tsx write-burst.ts <path> <keys>
 */
import { CachedValue, jsonSerializer } from '../../../index.js'
import { FileBackend } from '../index.js'

const [directory, keyCount] = [process.argv[2]!, Number(process.argv[3] ?? 200)]
const backend = new FileBackend({ path: directory, maxEntries: 150, lockTimeout: 5 })
backend.attach({ regionName: 'burst', expirationTime: 60, serializer: jsonSerializer, reportError: () => {} })

/** What the parent checks a value against: its size is recorded in it, so a torn value cannot pass. */
export interface BurstPayload {
  key: string
  round: number
  size: number
  pad: string
}

const payload = (key: string, round: number): BurstPayload => {
  const size = 500 + ((round * 7919 + key.length * 104_729) % 20_000)
  return { key, round, size, pad: 'x'.repeat(size) }
}

process.on('disconnect', () => process.exit(0))

let round = 0
for (;;) {
  round++
  const keys = Array.from({ length: keyCount }, (_, i) => `burst:${i}`)
  await backend.setMulti(keys.map((key) => [key, CachedValue.create(payload(key, round), Date.now())] as const))
  await backend.increment('burst:counter', 1)
  const mutex = backend.getMutex(`burst:${round % keyCount}`)!
  if ((await mutex.acquire({ wait: false })).acquired) {
    const key = `burst:${round % keyCount}`
    await mutex.release({ value: CachedValue.create(payload(key, round), Date.now()), since: Date.now() })
  }
  if (round === 1) process.send?.('writing')
  await new Promise((resolve) => setImmediate(resolve))
}
