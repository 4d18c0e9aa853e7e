/**
 * Group invalidation on the memory backend: tags on values and wheezy.caching-style dependencies. The same
 * behaviour across processes on Redis and memcached is tested with the backends.
 */
import { describe, expect, it } from 'vitest'
import {
  DEPENDENCY_PREFIX,
  MAX_TAGS,
  MemoryBackend,
  NO_VALUE,
  RegionRegistry,
  ValidationError,
  createRegion,
  type RegionEventMap,
} from './index.js'

function setup(options: { expirationTime?: number; serialize?: boolean } = {}) {
  let now = 7_000_000
  const registry = new RegionRegistry()
  const backend = new MemoryBackend({ serialize: options.serialize ?? false })
  const region = createRegion({ name: 'profiles', registry, clock: () => now }).configure(
    backend,
    options.expirationTime === undefined ? {} : { expirationTime: options.expirationTime },
  )
  const invalidations: Array<RegionEventMap['invalidate']> = []
  region.on('invalidate', (payload) => invalidations.push(payload))
  return { region, backend, registry, invalidations, advance: (ms: number) => (now += ms) }
}

describe('tags', () => {
  it('hard-invalidates every value carrying the tag, and only those', async () => {
    const { region, advance } = setup({ expirationTime: 60 })
    await region.getOrCreate('user:1:profile', () => 'p1', { tags: ['user:1'] })
    await region.getOrCreate('user:1:feed', () => 'f1', { tags: ['user:1', 'feeds'] })
    await region.set('user:1:settings', 's1', { tags: ['user:1'] })
    await region.getOrCreate('user:2:profile', () => 'p2', { tags: ['user:2'] })
    advance(1)
    await region.invalidateTags(['user:1'])
    advance(1)

    expect(await region.get('user:1:profile')).toBe(NO_VALUE)
    expect(await region.get('user:1:feed')).toBe(NO_VALUE)
    expect(await region.get('user:1:settings')).toBe(NO_VALUE)
    expect(await region.get('user:2:profile')).toBe('p2')
    expect(await region.getOrCreate('user:1:profile', () => 'p1 v2', { tags: ['user:1'] })).toBe('p1 v2')
    // The new value was created after the invalidation: it is valid.
    expect(await region.get('user:1:profile')).toBe('p1 v2')
  })

  it('invalidates a value when any one of its tags is invalidated', async () => {
    const { region, advance } = setup()
    await region.set('report', 'r1', { tags: ['sales', 'q3', 'emea'] })
    advance(1)
    await region.invalidateTags('q3')
    expect(await region.get('report')).toBe(NO_VALUE)
  })

  it('handles many keys per tag', async () => {
    const { region, advance } = setup()
    const keys = Array.from({ length: 500 }, (_, i) => `item:${i}`)
    await region.setMulti(new Map(keys.map((key) => [key, key])), { tags: ['catalog'] })
    advance(1)
    await region.invalidateTags(['catalog'])
    expect((await region.getMulti(keys)).every((value) => value === NO_VALUE)).toBe(true)
  })

  it('soft invalidation serves the stale value while one caller regenerates', async () => {
    const { region, advance } = setup({ expirationTime: 60 })
    await region.getOrCreate('user:3:feed', () => 'old feed', { tags: ['user:3'] })
    advance(1)
    await region.invalidateTags(['user:3'], { hard: false })
    advance(1)
    let runs = 0
    let release!: () => void
    const gate = new Promise<void>((resolve) => (release = resolve))
    const creator = async () => {
      runs++
      await gate
      return 'new feed'
    }
    const answered: string[] = []
    const calls = Array.from({ length: 50 }, () =>
      region.getOrCreate('user:3:feed', creator, { tags: ['user:3'] }).then((value) => (answered.push(value), value)),
    )
    await new Promise((resolve) => setImmediate(resolve))
    expect(answered).toEqual(Array.from({ length: 49 }, () => 'old feed'))
    release()
    await Promise.all(calls)
    expect(runs).toBe(1)
    expect(await region.get('user:3:feed')).toBe('new feed')
  })

  it('keeps tags through serialization (byte-storing backends)', async () => {
    const { region, advance } = setup({ serialize: true })
    await region.set('k', { a: 1 }, { tags: ['t/ü:1', 'two'] })
    expect(await region.get('k')).toEqual({ a: 1 })
    advance(1)
    await region.invalidateTags(['t/ü:1'])
    expect(await region.get('k')).toBe(NO_VALUE)
  })

  it('tags decorated functions, statically or from the arguments', async () => {
    const { region, advance } = setup()
    let calls = 0
    const profile = region.cacheOnArguments(
      async function profile(userId: number) {
        calls++
        return `profile ${userId}`
      },
      { tags: (userId) => [`user:${userId}`] },
    )
    const everything = region.cacheOnArguments(
      async function everything() {
        calls++
        return 'all'
      },
      { tags: ['global'] },
    )
    await profile(1)
    await profile(2)
    await everything()
    advance(1)
    await region.invalidateTags(['user:1', 'global'])
    await profile(1)
    await profile(2)
    await everything()
    expect(calls).toBe(5)
  })

  it('tags values made by getOrCreateMulti', async () => {
    const { region, advance } = setup()
    await region.getOrCreateMulti(['a', 'b'], async (...keys) => keys.map((key) => key.toUpperCase()), {
      tags: ['letters'],
    })
    advance(1)
    await region.invalidateTags(['letters'])
    expect(await region.getMulti(['a', 'b'])).toEqual([NO_VALUE, NO_VALUE])
  })

  it('reports tag invalidations as events and metrics with scope "tag"', async () => {
    const { region, registry, invalidations } = setup({ expirationTime: 60 })
    await region.invalidateTags(['user:1', 'user:2'])
    await region.invalidateTags(['user:3'], { hard: false })
    expect(invalidations).toEqual([
      { region: 'profiles', hard: true, scope: 'tag', key: 'user:1' },
      { region: 'profiles', hard: true, scope: 'tag', key: 'user:2' },
      { region: 'profiles', hard: false, scope: 'tag', key: 'user:3' },
    ])
    const text = await registry.metrics.metrics()
    expect(text).toContain('corral_invalidations_total{region="profiles",kind="hard",scope="tag"} 2')
    expect(text).toContain('corral_invalidations_total{region="profiles",kind="soft",scope="tag"} 1')
    expect(region.statsSnapshot().invalidations).toEqual({ hard: 2, soft: 1 })
  })

  it('rejects bad tags with a ValidationError and stores nothing', async () => {
    const { region } = setup({ expirationTime: 60 })
    const tooMany = Array.from({ length: MAX_TAGS + 1 }, (_, i) => `t${i}`)
    for (const tags of [[''], [42], tooMany, 'user:1', [null]] as unknown[]) {
      await expect(region.getOrCreate('k', () => 1, { tags: tags as string[] })).rejects.toThrow(ValidationError)
      await expect(region.set('k', 1, { tags: tags as string[] })).rejects.toThrow(ValidationError)
    }
    expect(await region.get('k')).toBe(NO_VALUE)
    await expect(region.invalidateTags([])).rejects.toThrow(/at least one tag/)
    await expect(region.invalidateTags([''])).rejects.toThrow(/empty/)
    await expect(region.invalidateTags([1 as unknown as string])).rejects.toThrow(/string/)
    await expect(region.invalidateTags(tooMany)).rejects.toThrow(/at most 64/)
    await expect(region.invalidateTags(['x'], { hard: 'yes' as unknown as boolean })).rejects.toThrow(ValidationError)
  })

  it('refuses soft tag invalidation without an expiration time', async () => {
    const { region } = setup()
    await expect(region.invalidateTags(['t'], { hard: false })).rejects.toThrow(/no expiration time/)
  })
})

describe('dependencies', () => {
  it('invalidates every key added to it, from any module, with one call', async () => {
    const { region, backend } = setup({ expirationTime: 60 })
    const profile = region.dependency('user:1')
    await region.set('user:1:profile', 'p')
    await region.set('user:1:settings', 's')
    await region.set('user:2:profile', 'other user')
    await profile.add('user:1:profile')
    // Another module only knows the dependency's name.
    await region.dependency('user:1').addMulti(['user:1:settings', 'user:1:missing'])
    expect(await profile.keys()).toEqual(['user:1:profile', 'user:1:settings', 'user:1:missing'])

    expect(await region.dependency('user:1').invalidate()).toBe(3)
    expect(await region.getMulti(['user:1:profile', 'user:1:settings'])).toEqual([NO_VALUE, NO_VALUE])
    expect(await region.get('user:2:profile')).toBe('other user')
    // The bookkeeping went with it.
    expect(await profile.keys()).toEqual([])
    expect(backend.count()).toBe(1)
    expect(await backend.get(`${DEPENDENCY_PREFIX}user:1`)).toBe(NO_VALUE)
  })

  it('reports a dependency invalidation once, with scope "dependency"', async () => {
    const { region, registry, invalidations } = setup()
    const dependency = region.dependency('order:9')
    await dependency.addMulti(['a', 'b'])
    await dependency.invalidate()
    expect(invalidations).toEqual([{ region: 'profiles', hard: true, scope: 'dependency', key: 'order:9' }])
    expect(await registry.metrics.metrics()).toContain(
      'corral_invalidations_total{region="profiles",kind="hard",scope="dependency"} 1',
    )
  })

  it('applies the region key mangler to its bookkeeping, so it lives beside the keys it tracks', async () => {
    const registry = new RegionRegistry()
    const backend = new MemoryBackend()
    const region = createRegion({ name: 'mangled', registry, keyMangler: (key) => `app:${key}` }).configure(backend)
    await region.set('x', 1)
    await region.dependency('group').add('x')
    expect(await backend.get(`app:${DEPENDENCY_PREFIX}group`)).not.toBe(NO_VALUE)
    await region.dependency('group').invalidate()
    expect(await backend.get('app:x')).toBe(NO_VALUE)
  })

  it('rejects bad names and backends without an atomic counter', async () => {
    const { region } = setup()
    expect(() => region.dependency('')).toThrow(ValidationError)
    expect(() => region.dependency(7 as unknown as string)).toThrow(ValidationError)
    expect(() => region.dependency('d', { expirationTime: 'soon' as never })).toThrow(ValidationError)
    await expect(region.dependency('d').addMulti([1 as unknown as string])).rejects.toThrow(ValidationError)
    const registry = new RegionRegistry()
    const off = createRegion({ registry }).configure('null')
    await expect(off.dependency('d').add('k')).rejects.toThrow(/atomic counter/)
  })
})
