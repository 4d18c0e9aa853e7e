import { describe, expect, it } from 'vitest'
import { RegionRegistry } from '../registry.js'
import { NullBackend } from './null.js'
import { describeBackendConformance } from '../testing/conformance.js'

describeBackendConformance('null', {
  create: async () => ({ backend: new NullBackend() }),
  capabilities: { stores: false, distributedLock: false },
})

describe('null backend through a region', () => {
  it('runs every creator: nothing is cached and nobody is coalesced', async () => {
    const region = new RegionRegistry().createRegion({ name: 'null-region' }).configure('null')
    let runs = 0
    const values = await Promise.all(Array.from({ length: 5 }, () => region.getOrCreate('k', async () => ++runs)))
    expect(runs).toBe(5)
    expect([...values].sort()).toEqual([1, 2, 3, 4, 5])
    expect(await region.keyIsLocked('k')).toBe(false)
    await region.close()
  })
})
