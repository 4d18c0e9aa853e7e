/** The same packages through `require()` (Node's require(esm)), from a CommonJS module. */
// compiled to require() calls: this file is CommonJS (.cts), and Corral's packages are ESM (require(esm))
import assert from 'node:assert/strict'
import * as core from '@corral/core'
import * as exporterPackage from '@corral/exporter'

async function main(): Promise<void> {
  const registry = new core.RegionRegistry()
  const users = core.createRegion({ name: 'users', registry }).configure('memory', { expirationTime: 60 })
  let calls = 0
  const values = await Promise.all(
    [1, 2, 3].map(() =>
      users.getOrCreate('k', async () => {
        calls++
        return 'v'
      }),
    ),
  )
  assert.deepEqual(values, ['v', 'v', 'v'])
  assert.equal(calls, 1)
  const app = exporterPackage.createExporter({ registry, adminToken: '' })
  assert.equal((await app.request('/healthz')).status, 200)
  await users.close()
  console.log('consumer (require): ok')
}

main().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
