import { describe, expect, it, vi } from 'vitest'
import {
  CachedValue,
  FORMAT_VERSION,
  MemoryBackend,
  NO_VALUE,
  PluginNotFoundError,
  RegionAlreadyConfiguredError,
  RegionNotConfiguredError,
  RegionRegistry,
  SerializationError,
  ValidationError,
  createRegion,
  registerBackend,
  regions,
  sha1KeyMangler,
  type RegionOptions,
} from './index.js'
import { deferred } from './test-support/deferred.js'

const START = 1_700_000_000_000

/** A clock the test moves by hand: expiry without sleeping. */
function manualClock(start = START) {
  const time = {
    now: start,
    clock: () => time.now,
    advance(seconds: number) {
      time.now += seconds * 1000
    },
  }
  return time
}

function setup(options: Omit<RegionOptions, 'registry' | 'clock'> = {}) {
  const registry = new RegionRegistry()
  const time = manualClock()
  const region = createRegion({ registry, clock: time.clock, ...options })
  return { registry, time, region }
}

/** A creator that counts its calls and returns `${prefix}${n}` for the n-th call. */
function counter(prefix = 'v') {
  const creator = Object.assign(
    async () => {
      creator.calls++
      return `${prefix}${creator.calls}`
    },
    { calls: 0 },
  )
  return creator
}

function circular(): Record<string, unknown> {
  const value: Record<string, unknown> = { name: 'loop' }
  value.self = value
  return value
}

describe('life cycle: create, then configure', () => {
  it('a region can be a decorator target before configure(), and its functions work once configured', async () => {
    const { region } = setup({ name: 'users' })
    let calls = 0
    const loadUser = region.cacheOnArguments(async function loadUser(id: number) {
      calls++
      return { id }
    })
    expect(region.isConfigured).toBe(false)
    await expect(loadUser(1)).rejects.toBeInstanceOf(RegionNotConfiguredError)
    expect(calls).toBe(0)

    region.configure('memory', { expirationTime: '5m' })
    expect(await loadUser(1)).toEqual({ id: 1 })
    expect(await loadUser(1)).toEqual({ id: 1 })
    expect(calls).toBe(1)
  })

  it('every operation of an unconfigured region fails with RegionNotConfiguredError telling what to do', async () => {
    const { region } = setup({ name: 'early' })
    const operations: Array<() => Promise<unknown>> = [
      () => region.get('k'),
      () => region.getMulti(['k']),
      () => region.getValueMetadata('k'),
      () => region.getOrCreate('k', () => 1),
      () => region.getOrCreateMulti(['k'], () => [1]),
      () => region.set('k', 1),
      () => region.setMulti({ k: 1 }),
      () => region.delete('k'),
      () => region.deleteMulti(['k']),
      () => region.invalidate(),
      () => region.keyIsLocked('k'),
    ]
    for (const operation of operations) {
      const error = await operation().then(
        () => undefined,
        (e: unknown) => e,
      )
      expect(error).toBeInstanceOf(RegionNotConfiguredError)
      expect((error as RegionNotConfiguredError).code).toBe('E_REGION_NOT_CONFIGURED')
      expect((error as Error).message).toMatch(/"early" is not configured.*configure\(/)
    }
  })

  it('configure() returns the region and describes the backend and expiration', () => {
    const { region } = setup({ name: 'chained' })
    expect(region.configure('memory', { expirationTime: '5m' })).toBe(region)
    expect(region.isConfigured).toBe(true)
    expect(region.expirationTime).toBe(300)
    expect(region.describe()).toEqual({ name: 'chained', backend: 'memory', expirationTime: 300 })
  })

  it('a second configure() fails with RegionAlreadyConfiguredError and leaves the region working as before', async () => {
    const { region } = setup()
    region.configure('memory', { expirationTime: 60 })
    await region.set('k', 'kept')
    expect(() => region.configure('null')).toThrow(RegionAlreadyConfiguredError)
    expect(() => region.configure('null')).toThrow(/replaceExistingBackend/)
    expect(await region.get('k')).toBe('kept')
    expect(region.describe().backend).toBe('memory')
  })

  it('replaceExistingBackend swaps the backend and its expiration', async () => {
    const { region, time } = setup()
    region.configure('memory', { expirationTime: 60 })
    await region.set('k', 'old backend')
    region.configure('memory', { expirationTime: 10, replaceExistingBackend: true })
    expect(await region.get('k')).toBe(NO_VALUE)
    await region.set('k', 'new backend')
    time.advance(11)
    expect(await region.get('k')).toBe(NO_VALUE)
    region.configure('null', { replaceExistingBackend: true })
    expect(region.describe()).toEqual({ name: region.name, backend: 'null', expirationTime: null })
  })

  it('an unknown backend name is a PluginNotFoundError listing the registered ones; the region stays unconfigured', () => {
    const { region } = setup()
    expect(() => region.configure('memcache')).toThrow(PluginNotFoundError)
    expect(() => region.configure('memcache')).toThrow(/no backend named "memcache".*memory/)
    expect(region.isConfigured).toBe(false)
    region.configure('memory')
    expect(region.isConfigured).toBe(true)
  })

  it.each([
    ['an unknown unit', '5 minutes'],
    ['a negative number', -5],
    ['zero', 0],
    ['NaN', Number.NaN],
    ['a boolean', true],
  ])('an expirationTime of %s is a ValidationError; the region stays unconfigured', (_label, expirationTime) => {
    const { region } = setup({ name: 'durations' })
    expect(() => region.configure('memory', { expirationTime: expirationTime as never })).toThrow(ValidationError)
    expect(() => region.configure('memory', { expirationTime: expirationTime as never })).toThrow(
      /region "durations": expirationTime/,
    )
    expect(region.isConfigured).toBe(false)
  })

  it('an unknown backend argument is a ValidationError that lists the accepted ones', () => {
    const { region } = setup()
    expect(() => region.configure('memory', { arguments: { maxEntires: 10 } })).toThrow(ValidationError)
    expect(() => region.configure('memory', { arguments: { maxEntires: 10 } })).toThrow(
      /unknown argument "maxEntires".*maxEntries/,
    )
    expect(() => region.configure('null', { arguments: { anything: 1 } })).toThrow(ValidationError)
    expect(region.isConfigured).toBe(false)
  })

  it('a backend that is neither a name nor a CacheBackend is a ValidationError', () => {
    const { region } = setup()
    expect(() => region.configure(42 as never)).toThrow(ValidationError)
    expect(() => region.configure({ get: 1 } as never)).toThrow(ValidationError)
    expect(() => region.configure('memory', 'fast' as never)).toThrow(ValidationError)
  })

  it('accepts a CacheBackend instance and uses it', async () => {
    const backend = new MemoryBackend()
    const { region } = setup()
    region.configure(backend)
    await region.set('k', 'v')
    expect(await backend.get('k')).toMatchObject({ payload: 'v' })
  })

  it('an expirationTime of -1 on the region means values never expire', async () => {
    const { region, time } = setup()
    region.configure('memory', { expirationTime: -1 })
    expect(region.expirationTime).toBeUndefined()
    await region.set('k', 'v')
    time.advance(10 * 365 * 86_400)
    expect(await region.get('k')).toBe('v')
  })
})

describe('configureFromConfig', () => {
  it('reads backend, expiration_time and arguments.* under the prefix, converting strings', async () => {
    const { region, time } = setup()
    region.configureFromConfig(
      {
        'cache.users.backend': 'memory',
        'cache.users.expiration_time': '30',
        'cache.users.arguments.maxEntries': '2',
        'cache.users.arguments.serialize': 'true',
        // another region's settings are not this region's business
        'cache.sessions.backend': 'null',
        'cache.sessions.arguments.url': 'redis://x',
      },
      'cache.users.',
    )
    expect(region.describe()).toEqual({ name: region.name, backend: 'memory', expirationTime: 30 })
    // maxEntries '2' became the number 2: the third key evicts the first
    await region.setMulti({ a: 1, b: 2, c: 3 })
    expect(await region.getMulti(['a', 'b', 'c'])).toEqual([NO_VALUE, 2, 3])
    // serialize 'true' became a boolean: values are serialized, so a BigInt cannot be stored
    await expect(region.set('big', 1n)).rejects.toBeInstanceOf(SerializationError)
    // '30' is 30 seconds
    time.advance(30)
    expect(await region.get('c')).toBe(3)
    time.advance(0.001)
    expect(await region.get('c')).toBe(NO_VALUE)
  })

  it('accepts duration strings with units and leaves out a missing expiration', () => {
    const a = setup().region.configureFromConfig({ backend: 'memory', expiration_time: '5m' }, '')
    expect(a.expirationTime).toBe(300)
    const b = setup().region.configureFromConfig({ 'x.backend': 'memory' }, 'x.')
    expect(b.expirationTime).toBeUndefined()
  })

  it.each([
    ['a number that is not one', { 'c.arguments.maxEntries': 'lots' }],
    ['a boolean that is not one', { 'c.arguments.serialize': 'yes' }],
    ['a non-positive entry bound', { 'c.arguments.maxEntries': '0' }],
    ['an unknown argument', { 'c.arguments.maxEntires': '10' }],
    ['an invalid expiration', { 'c.expiration_time': 'soon' }],
  ])('rejects %s with a ValidationError', (_label, extra) => {
    const { region } = setup()
    expect(() => region.configureFromConfig({ 'c.backend': 'memory', ...extra }, 'c.')).toThrow(ValidationError)
    expect(region.isConfigured).toBe(false)
  })

  it('reads the resilience settings: a failing creator after expiry is answered by fail-safe', async () => {
    const { region, time } = setup()
    region.configureFromConfig(
      { 'c.backend': 'memory', 'c.expiration_time': '30s', 'c.fail_safe.max_stale_age': '1h', 'c.hard_timeout': '2s' },
      'c.',
    )
    expect(await region.getOrCreate('k', async () => 'first')).toBe('first')
    time.advance(31)
    const failing = async (): Promise<string> => {
      throw new Error('source down')
    }
    // Without fail-safe this call would reject with the creator's error.
    expect(await region.getOrCreate('k', failing)).toBe('first')
  })

  it("converts eager_refresh to a number: a hit late in the value's life refreshes it in the background", async () => {
    const { region, time } = setup()
    region.configureFromConfig({ 'c.backend': 'memory', 'c.expiration_time': '10', 'c.eager_refresh': '0.5' }, 'c.')
    const creator = counter()
    expect(await region.getOrCreate('k', creator)).toBe('v1')
    time.advance(6)
    // Served at once, and regenerated behind it.
    expect(await region.getOrCreate('k', creator)).toBe('v1')
    await vi.waitFor(() => expect(creator.calls).toBe(2))
    await vi.waitFor(async () => expect(await region.get('k')).toBe('v2'))
  })

  it('reads l1 and circuit_breaker settings into their options', async () => {
    const name = `always-down-${Math.random().toString(36).slice(2, 10)}`
    const down = () => Promise.reject(new Error('server down'))
    registerBackend(name, () => ({
      name,
      get: down,
      getMulti: down,
      set: down,
      setMulti: down,
      delete: down,
      deleteMulti: down,
    }))
    const { region } = setup()
    region.configureFromConfig({ 'c.backend': name, 'c.circuit_breaker.failures': '2' }, 'c.')
    expect(region.stats.circuit).toEqual({ backend: name, state: 'closed' })
    await region.get('a')
    expect(region.stats.circuit?.state).toBe('closed')
    await region.get('b')
    // Opened after the second failure, as the setting says (the default is 5).
    expect(region.stats.circuit?.state).toBe('open')

    const off = setup().region.configureFromConfig({ 'c.backend': name, 'c.circuit_breaker': 'false' }, 'c.')
    expect(off.stats.circuit).toBeNull()
    // An L1 needs a backend shared with other processes: the memory backend is refused, which shows l1 was read.
    expect(() =>
      setup().region.configureFromConfig({ 'c.backend': 'memory', 'c.l1.max_entries': '100' }, 'c.'),
    ).toThrow(/l1/)
    expect(setup().region.configureFromConfig({ 'c.backend': 'memory', 'c.l1': 'false' }, 'c.').isConfigured).toBe(true)
  })

  it.each([
    ['a misspelt setting', { 'c.expiration': '5m' }, /unknown setting "c\.expiration".*c\.expiration_time/],
    ['an unknown nested setting', { 'c.l1.size': '10' }, /unknown setting "c\.l1\.size".*c\.l1\.max_entries/],
    ['a number that is not one', { 'c.eager_refresh': 'most' }, /"c\.eager_refresh" must be a number/],
    ['a boolean that is not one', { 'c.circuit_breaker': 'off' }, /"c\.circuit_breaker" must be true or false/],
    ['an invalid fraction', { 'c.expiration_time': '10', 'c.eager_refresh': '1.5' }, /eagerRefresh/],
    ['an invalid timeout', { 'c.soft_timeout': 'soon' }, /softTimeout/],
  ])('rejects %s under the prefix, naming the valid settings', (_label, extra, message) => {
    const { region } = setup()
    expect(() => region.configureFromConfig({ 'c.backend': 'memory', ...extra }, 'c.')).toThrow(ValidationError)
    expect(() => region.configureFromConfig({ 'c.backend': 'memory', ...extra }, 'c.')).toThrow(message)
    expect(region.isConfigured).toBe(false)
  })

  it('takes wrap, regionInvalidator and replaceExistingBackend as a third argument, and nothing else', async () => {
    const { region } = setup()
    region.configureFromConfig({ 'c.backend': 'memory' }, 'c.')
    await region.set('k', 'old backend')
    expect(() => region.configureFromConfig({ 'c.backend': 'memory' }, 'c.')).toThrow(RegionAlreadyConfiguredError)
    region.configureFromConfig({ 'c.backend': 'memory' }, 'c.', { replaceExistingBackend: true })
    expect(await region.get('k')).toBe(NO_VALUE)
    expect(() => region.configureFromConfig({ 'c.backend': 'memory' }, 'c.', { expirationTime: 5 } as never)).toThrow(
      /configureFromConfig\(\).*replaceExistingBackend/,
    )
  })

  it('requires the backend setting, and knows the backend name', () => {
    const { region } = setup()
    expect(() => region.configureFromConfig({ 'c.expiration_time': '5m' }, 'c.')).toThrow(ValidationError)
    expect(() => region.configureFromConfig({ 'c.expiration_time': '5m' }, 'c.')).toThrow(/"c\.backend"/)
    expect(() => region.configureFromConfig({ 'c.backend': 'nope' }, 'c.')).toThrow(PluginNotFoundError)
    expect(() => region.configureFromConfig(null as never, 'c.')).toThrow(ValidationError)
  })
})

describe('reads and writes', () => {
  it('get returns NO_VALUE for an absent key and the value once set', async () => {
    const { region } = setup()
    region.configure('memory')
    expect(await region.get('k')).toBe(NO_VALUE)
    await region.set('k', { id: 1 })
    expect(await region.get('k')).toEqual({ id: 1 })
  })

  it('stores null, undefined, false, 0 and "" as values, distinct from NO_VALUE', async () => {
    const { region } = setup()
    region.configure('memory')
    const values = [null, undefined, false, 0, '']
    await region.setMulti(new Map(values.map((value, i) => [`k${i}`, value])))
    expect(await region.getMulti(values.map((_, i) => `k${i}`))).toEqual(values)
    const creator = counter()
    const undefinedCreator = async () => {
      await creator()
      return undefined
    }
    expect(await region.getOrCreate('u', undefinedCreator)).toBeUndefined()
    expect(await region.getOrCreate('u', undefinedCreator)).toBeUndefined()
    expect(creator.calls).toBe(1)
  })

  it('getMulti answers in key order, NO_VALUE where missing, duplicates included', async () => {
    const { region } = setup()
    region.configure('memory')
    await region.set('b', 'B')
    await region.set('d', 'D')
    expect(await region.getMulti(['d', 'a', 'b', 'c', 'b'])).toEqual(['D', NO_VALUE, 'B', NO_VALUE, 'B'])
    expect(await region.getMulti([])).toEqual([])
  })

  it('setMulti accepts a Map or a plain object', async () => {
    const { region } = setup()
    region.configure('memory')
    await region.setMulti(
      new Map<string, unknown>([
        ['m1', 1],
        ['m2', { two: 2 }],
      ]),
    )
    await region.setMulti({ o1: 'one', o2: ['two'] })
    expect(await region.getMulti(['m1', 'm2', 'o1', 'o2'])).toEqual([1, { two: 2 }, 'one', ['two']])
    await expect(region.setMulti(null as never)).rejects.toBeInstanceOf(ValidationError)
  })

  it('delete and deleteMulti remove values and are idempotent', async () => {
    const { region } = setup()
    region.configure('memory')
    await region.setMulti({ a: 1, b: 2, c: 3 })
    await region.delete('a')
    await region.delete('a')
    await region.delete('never-set')
    expect(await region.get('a')).toBe(NO_VALUE)
    await region.deleteMulti(['b', 'missing'])
    await region.deleteMulti(['b', 'missing'])
    expect(await region.getMulti(['a', 'b', 'c'])).toEqual([NO_VALUE, NO_VALUE, 3])
    await region.deleteMulti([])
  })

  it('getValueMetadata gives the value, its creation time and its age in seconds', async () => {
    const { region, time } = setup()
    region.configure('memory', { expirationTime: 60 })
    expect(await region.getValueMetadata('k')).toBeUndefined()
    await region.set('k', 'v')
    time.advance(12.5)
    expect(await region.getValueMetadata('k')).toEqual({ value: 'v', cachedTime: START / 1000, age: 12.5 })
  })

  it('getValueMetadata reports expired values (it ignores expiry) but not hard-invalidated ones', async () => {
    const { region, time } = setup()
    region.configure('memory', { expirationTime: 10 })
    await region.set('k', 'v')
    time.advance(100)
    expect(await region.get('k')).toBe(NO_VALUE)
    expect(await region.getValueMetadata('k')).toMatchObject({ value: 'v', age: 100 })
    await region.invalidate({ hard: true })
    expect(await region.getValueMetadata('k')).toBeUndefined()
  })

  it('rejects keys that are not strings with a ValidationError', async () => {
    const { region } = setup()
    region.configure('memory')
    await expect(region.get(42 as never)).rejects.toBeInstanceOf(ValidationError)
    await expect(region.set({} as never, 1)).rejects.toBeInstanceOf(ValidationError)
    await expect(region.getOrCreate(7 as never, () => 1)).rejects.toBeInstanceOf(ValidationError)
    await expect(region.getMulti(['a', 1] as never)).rejects.toBeInstanceOf(ValidationError)
    await expect(region.deleteMulti('a' as never)).rejects.toBeInstanceOf(ValidationError)
    await expect(region.getOrCreate('k', 'value' as never)).rejects.toBeInstanceOf(ValidationError)
  })
})

describe('getOrCreate (one caller)', () => {
  it('runs the creator on a miss, stores its value, and serves it afterwards', async () => {
    const { region } = setup()
    region.configure('memory', { expirationTime: 60 })
    const creator = counter()
    expect(await region.getOrCreate('k', creator)).toBe('v1')
    expect(await region.getOrCreate('k', creator)).toBe('v1')
    expect(await region.get('k')).toBe('v1')
    expect(creator.calls).toBe(1)
  })

  it('accepts a synchronous creator', async () => {
    const { region } = setup()
    region.configure('memory')
    expect(await region.getOrCreate('k', () => 7)).toBe(7)
    expect(await region.get('k')).toBe(7)
  })

  it('a throwing creator rejects, stores nothing, releases the lock, and the next call tries again', async () => {
    const { region } = setup()
    region.configure('memory')
    await expect(
      region.getOrCreate('k', () => {
        throw new Error('database down')
      }),
    ).rejects.toThrow('database down')
    expect(await region.get('k')).toBe(NO_VALUE)
    expect(await region.keyIsLocked('k')).toBe(false)
    expect(await region.getOrCreate('k', async () => 'recovered')).toBe('recovered')
  })
})

describe('expiry (injected clock)', () => {
  it('a value is fresh up to the expiration time and a miss after it; getOrCreate then regenerates', async () => {
    const { region, time } = setup()
    region.configure('memory', { expirationTime: 10 })
    const creator = counter()
    expect(await region.getOrCreate('k', creator)).toBe('v1')
    time.advance(10)
    expect(await region.get('k')).toBe('v1')
    expect(await region.getOrCreate('k', creator)).toBe('v1')
    time.advance(0.001)
    expect(await region.get('k')).toBe(NO_VALUE)
    expect(await region.getOrCreate('k', creator)).toBe('v2')
    expect(creator.calls).toBe(2)
    expect(await region.get('k')).toBe('v2')
  })

  it('understands duration strings such as 250ms', async () => {
    const { region, time } = setup()
    region.configure('memory', { expirationTime: '250ms' })
    await region.set('k', 'v')
    time.advance(0.25)
    expect(await region.get('k')).toBe('v')
    time.advance(0.001)
    expect(await region.get('k')).toBe(NO_VALUE)
  })

  it('without an expiration time values never expire', async () => {
    const { region, time } = setup()
    region.configure('memory')
    await region.set('k', 'v')
    time.advance(365 * 86_400)
    expect(await region.get('k')).toBe('v')
  })

  it('get takes a per-call expirationTime, shorter or longer than the region one, and -1 for never', async () => {
    const { region, time } = setup()
    region.configure('memory', { expirationTime: 60 })
    await region.set('k', 'v')
    time.advance(6)
    expect(await region.get('k', { expirationTime: 5 })).toBe(NO_VALUE)
    expect(await region.get('k', { expirationTime: '10s' })).toBe('v')
    expect(await region.get('k')).toBe('v')
    time.advance(100)
    expect(await region.get('k')).toBe(NO_VALUE)
    expect(await region.get('k', { expirationTime: '2m' })).toBe('v')
    expect(await region.get('k', { expirationTime: -1 })).toBe('v')
    expect(await region.getMulti(['k'], { expirationTime: -1 })).toEqual(['v'])
    expect(await region.getMulti(['k'], { expirationTime: 5 })).toEqual([NO_VALUE])
  })

  it('getOrCreate takes a per-call expirationTime, -1 meaning never for that call', async () => {
    const { region, time } = setup()
    region.configure('memory', { expirationTime: 60 })
    const creator = counter()
    await region.getOrCreate('k', creator)
    time.advance(30)
    expect(await region.getOrCreate('k', creator, { expirationTime: 10 })).toBe('v2')
    time.advance(86_400)
    expect(await region.getOrCreate('k', creator, { expirationTime: -1 })).toBe('v2')
    expect(await region.getOrCreate('k', creator)).toBe('v3')
    expect(creator.calls).toBe(3)
  })

  it('rejects an invalid per-call expirationTime with a ValidationError', async () => {
    const { region } = setup()
    region.configure('memory', { expirationTime: 60 })
    await expect(region.get('k', { expirationTime: 'later' as never })).rejects.toBeInstanceOf(ValidationError)
    await expect(region.getOrCreate('k', () => 1, { expirationTime: -7 })).rejects.toBeInstanceOf(ValidationError)
  })

  it('ignoreExpiration returns expired and soft-invalidated values, but not hard-invalidated ones', async () => {
    const { region, time } = setup()
    region.configure('memory', { expirationTime: 10 })
    await region.set('k', 'v')
    time.advance(20)
    expect(await region.get('k')).toBe(NO_VALUE)
    expect(await region.get('k', { ignoreExpiration: true })).toBe('v')
    expect(await region.getMulti(['k', 'absent'], { ignoreExpiration: true })).toEqual(['v', NO_VALUE])

    await region.set('s', 'soft')
    await region.invalidate({ hard: false })
    expect(await region.get('s')).toBe(NO_VALUE)
    expect(await region.get('s', { ignoreExpiration: true })).toBe('soft')

    await region.invalidate({ hard: true })
    expect(await region.get('s', { ignoreExpiration: true })).toBe(NO_VALUE)
  })
})

describe('invalidation', () => {
  it('hard: values created before are misses, the creator runs again, values created after are fresh', async () => {
    const { region } = setup()
    region.configure('memory', { expirationTime: 60 })
    const creator = counter()
    await region.getOrCreate('k', creator)
    await region.set('other', 'o')
    // the clock does not move: invalidation still separates "before" from "after"
    await region.invalidate()
    expect(await region.get('k')).toBe(NO_VALUE)
    expect(await region.get('other')).toBe(NO_VALUE)
    expect(await region.getValueMetadata('k')).toBeUndefined()
    expect(await region.getOrCreate('k', creator)).toBe('v2')
    expect(await region.getOrCreate('k', creator)).toBe('v2')
    await region.set('after', 'a')
    expect(await region.get('after')).toBe('a')
    expect(creator.calls).toBe(2)
  })

  it('hard invalidation works without an expiration time', async () => {
    const { region } = setup()
    region.configure('memory')
    await region.set('k', 'v')
    await region.invalidate({ hard: true })
    expect(await region.get('k')).toBe(NO_VALUE)
  })

  it('soft: the value is stale; get misses; getOrCreate regenerates for the one caller', async () => {
    const { region } = setup()
    region.configure('memory', { expirationTime: 60 })
    const creator = counter()
    await region.getOrCreate('k', creator)
    await region.invalidate({ hard: false })
    expect(await region.get('k')).toBe(NO_VALUE)
    // still there, stale
    expect(await region.getValueMetadata('k')).toMatchObject({ value: 'v1' })
    expect(await region.getOrCreate('k', creator)).toBe('v2')
    expect(await region.getOrCreate('k', creator)).toBe('v2')
    expect(await region.get('k')).toBe('v2')
    expect(creator.calls).toBe(2)
  })

  it('soft invalidation without an expiration time is a ValidationError that says what to do', async () => {
    const { region } = setup()
    region.configure('memory')
    await region.set('k', 'v')
    await expect(region.invalidate({ hard: false })).rejects.toBeInstanceOf(ValidationError)
    await expect(region.invalidate({ hard: false })).rejects.toThrow(/expirationTime/)
    expect(await region.get('k')).toBe('v')
  })

  it('rejects a non-boolean hard flag', async () => {
    const { region } = setup()
    region.configure('memory', { expirationTime: 60 })
    await expect(region.invalidate({ hard: 'yes' as never })).rejects.toBeInstanceOf(ValidationError)
  })

  it('a soft invalidation after a hard one does not bring hard-invalidated values back', async () => {
    const { region } = setup()
    region.configure('memory', { expirationTime: 60 })
    await region.set('k', 'v')
    await region.invalidate({ hard: true })
    await region.invalidate({ hard: false })
    expect(await region.get('k', { ignoreExpiration: true })).toBe(NO_VALUE)
  })
})

describe('keyIsLocked', () => {
  it('is false when nothing is being created, whether the key is cached or not', async () => {
    const { region } = setup()
    region.configure('memory')
    expect(await region.keyIsLocked('k')).toBe(false)
    await region.getOrCreate('k', () => 1)
    expect(await region.keyIsLocked('k')).toBe(false)
  })

  it('is true while a creator runs for the key, and only for that key', async () => {
    const { region } = setup()
    region.configure('memory')
    const gate = deferred<string>()
    const pending = region.getOrCreate('k', () => gate.promise)
    await Promise.resolve()
    expect(await region.keyIsLocked('k')).toBe(true)
    expect(await region.keyIsLocked('other')).toBe(false)
    gate.resolve('done')
    expect(await pending).toBe('done')
    expect(await region.keyIsLocked('k')).toBe(false)
  })
})

describe('key manglers', () => {
  it('a region keyMangler applies to every key that reaches the backend', async () => {
    const backend = new MemoryBackend()
    const { region } = setup({ keyMangler: (key) => `app:${key.toUpperCase()}` })
    region.configure(backend, { expirationTime: 60 })
    await region.set('a', 1)
    await region.setMulti({ b: 2 })
    await region.getOrCreate('c', () => 3)
    await region.getOrCreateMulti(['d'], () => [4])
    for (const [stored, payload] of [
      ['app:A', 1],
      ['app:B', 2],
      ['app:C', 3],
      ['app:D', 4],
    ] as const) {
      expect(await backend.get(stored)).toMatchObject({ payload })
    }
    expect(await backend.get('a')).toBe(NO_VALUE)
    // reads go through the mangler too
    expect(await region.get('a')).toBe(1)
    expect(await region.getMulti(['b', 'c'])).toEqual([2, 3])
    await region.delete('a')
    await region.deleteMulti(['b'])
    expect(await backend.get('app:A')).toBe(NO_VALUE)
    expect(await backend.get('app:B')).toBe(NO_VALUE)
  })

  it('sha1KeyMangler stores each value under the SHA-1 of its key', async () => {
    const backend = new MemoryBackend()
    const { region } = setup({ keyMangler: sha1KeyMangler })
    region.configure(backend)
    await region.set('abc', 'v')
    expect(await backend.get('a9993e364706816aba3e25717850c26c9cd0d89d')).toMatchObject({ payload: 'v' })
    expect(await region.get('abc')).toBe('v')
  })

  it("uses the backend's default mangler unless the region has its own or disables it with false", async () => {
    class PrefixingBackend extends MemoryBackend {
      readonly keyMangler = (key: string) => `backend:${key}`
    }
    const byDefault = new PrefixingBackend()
    await setup().region.configure(byDefault).set('k', 1)
    expect(await byDefault.get('backend:k')).toMatchObject({ payload: 1 })

    const overridden = new PrefixingBackend()
    const custom = setup({ keyMangler: (key) => `region:${key}` }).region.configure(overridden)
    await custom.set('k', 2)
    expect(await overridden.get('region:k')).toMatchObject({ payload: 2 })
    expect(await overridden.get('backend:k')).toBe(NO_VALUE)

    const disabled = new PrefixingBackend()
    const raw = setup({ keyMangler: false }).region.configure(disabled)
    await raw.set('k', 3)
    expect(await disabled.get('k')).toMatchObject({ payload: 3 })
    expect(await disabled.get('backend:k')).toBe(NO_VALUE)
    expect(await raw.get('k')).toBe(3)
  })
})

describe('shouldCache', () => {
  it('a value shouldCache declines is returned but not stored, so the creator runs again', async () => {
    const { region } = setup()
    region.configure('memory')
    const seen: unknown[] = []
    const shouldCache = (value: string) => {
      seen.push(value)
      return value !== 'v1'
    }
    const creator = counter()
    expect(await region.getOrCreate('k', creator, { shouldCache })).toBe('v1')
    expect(await region.get('k')).toBe(NO_VALUE)
    expect(await region.getOrCreate('k', creator, { shouldCache })).toBe('v2')
    expect(await region.get('k')).toBe('v2')
    expect(await region.getOrCreate('k', creator, { shouldCache })).toBe('v2')
    expect(creator.calls).toBe(2)
    expect(seen).toEqual(['v1', 'v2'])
  })

  it('applies per value in getOrCreateMulti', async () => {
    const { region } = setup()
    region.configure('memory')
    const values = await region.getOrCreateMulti(['a', 'b'], (...keys) => keys.map((key) => `${key}!`), {
      shouldCache: (value) => value !== 'b!',
    })
    expect(values).toEqual(['a!', 'b!'])
    expect(await region.getMulti(['a', 'b'])).toEqual(['a!', NO_VALUE])
  })
})

describe('getOrCreateMulti (one caller)', () => {
  it('the creator receives only the missing keys, sorted; values come back in request order', async () => {
    const { region } = setup()
    region.configure('memory', { expirationTime: 60 })
    await region.set('b', 'cached-b')
    const calls: string[][] = []
    const creator = (...keys: string[]) => {
      calls.push(keys)
      return keys.map((key) => `new-${key}`)
    }
    expect(await region.getOrCreateMulti(['d', 'b', 'a', 'c', 'a'], creator)).toEqual([
      'new-d',
      'cached-b',
      'new-a',
      'new-c',
      'new-a',
    ])
    expect(calls).toEqual([['a', 'c', 'd']])
    expect(await region.getOrCreateMulti(['a', 'b', 'c', 'd'], creator)).toEqual([
      'new-a',
      'cached-b',
      'new-c',
      'new-d',
    ])
    expect(calls).toHaveLength(1)
  })

  it('regenerates expired keys', async () => {
    const { region, time } = setup()
    region.configure('memory', { expirationTime: 10 })
    await region.set('old', 'stale')
    time.advance(5)
    await region.set('young', 'fresh')
    time.advance(6)
    const calls: string[][] = []
    const values = await region.getOrCreateMulti(['young', 'old'], (...keys) => {
      calls.push(keys)
      return keys.map(() => 'regenerated')
    })
    expect(values).toEqual(['fresh', 'regenerated'])
    expect(calls).toEqual([['old']])
  })

  it('a creator returning the wrong number of values is a ValidationError and leaves no lock held', async () => {
    const { region } = setup()
    region.configure('memory')
    await expect(region.getOrCreateMulti(['a', 'b'], () => ['only one'])).rejects.toBeInstanceOf(ValidationError)
    expect(await region.keyIsLocked('a')).toBe(false)
    expect(await region.getMulti(['a', 'b'])).toEqual([NO_VALUE, NO_VALUE])
    expect(await region.getOrCreateMulti(['a', 'b'], (...keys) => keys)).toEqual(['a', 'b'])
  })
})

describe('storage format', () => {
  it('a value written in an incompatible format version is a miss, and getOrCreate replaces it', async () => {
    const backend = new MemoryBackend()
    const { region } = setup()
    region.configure(backend, { expirationTime: 60 })
    await backend.set('k', new CachedValue('from the future', { ct: START, v: 999 }))
    await backend.set('j', new CachedValue('from the future', { ct: START, v: 999 }))
    expect(await region.get('k')).toBe(NO_VALUE)
    expect(await region.get('k', { ignoreExpiration: true })).toBe(NO_VALUE)
    expect(await region.getMulti(['k', 'j'])).toEqual([NO_VALUE, NO_VALUE])
    expect(await region.getValueMetadata('k')).toBeUndefined()
    expect(await region.getOrCreate('k', () => 'current')).toBe('current')
    expect(await backend.get('k')).toMatchObject({ payload: 'current', metadata: { v: FORMAT_VERSION } })
    expect(await region.getOrCreateMulti(['j'], () => ['current j'])).toEqual(['current j'])
  })
})

describe('values that cannot be serialized (memory backend with serialize: true)', () => {
  function serializingRegion() {
    const { region, registry } = setup()
    region.configure('memory', { expirationTime: 60, arguments: { serialize: true } })
    return { region, registry }
  }

  it('set fails with SerializationError and stores nothing', async () => {
    const { region } = serializingRegion()
    await region.set('k', 'good')
    await expect(region.set('k', 10n)).rejects.toBeInstanceOf(SerializationError)
    await expect(region.set('c', circular())).rejects.toMatchObject({ code: 'E_SERIALIZATION' })
    expect(await region.get('k')).toBe('good')
    expect(await region.get('c')).toBe(NO_VALUE)
  })

  it('setMulti with one bad value stores none of them', async () => {
    const { region } = serializingRegion()
    await expect(region.setMulti({ a: 1, b: 2n, c: 3 })).rejects.toBeInstanceOf(SerializationError)
    expect(await region.getMulti(['a', 'b', 'c'])).toEqual([NO_VALUE, NO_VALUE, NO_VALUE])
  })

  it('getOrCreate rejects with SerializationError, leaves no lock held, and a good creator works next', async () => {
    const { region } = serializingRegion()
    await expect(region.getOrCreate('k', () => circular())).rejects.toBeInstanceOf(SerializationError)
    await expect(region.getOrCreate('k', () => 5n)).rejects.toBeInstanceOf(SerializationError)
    expect(await region.keyIsLocked('k')).toBe(false)
    expect(await region.get('k')).toBe(NO_VALUE)
    expect(await region.getOrCreate('k', () => ({ ok: true }))).toEqual({ ok: true })
    expect(await region.get('k')).toEqual({ ok: true })
  })

  it('getOrCreateMulti rejects with SerializationError and the next call works', async () => {
    const { region } = serializingRegion()
    await expect(region.getOrCreateMulti(['a', 'b'], () => [1, 2n])).rejects.toBeInstanceOf(SerializationError)
    expect(await region.keyIsLocked('a')).toBe(false)
    expect(await region.getOrCreateMulti(['a', 'b'], () => [1, 2])).toEqual([1, 2])
  })

  it("uses the region's serializer", async () => {
    const registry = new RegionRegistry()
    const region = createRegion({
      registry,
      serializer: {
        serialize: (value) => JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v)),
        deserialize: (data) =>
          JSON.parse(Buffer.from(data).toString('utf8'), (_k, v: unknown) =>
            typeof v === 'string' && /^\d+n$/.test(v) ? BigInt(v.slice(0, -1)) : v,
          ),
      },
    }).configure('memory', { arguments: { serialize: true } })
    await region.set('big', { n: 12n })
    expect(await region.get('big')).toEqual({ n: 12n })
  })
})

describe('registry', () => {
  it('names are unique within a registry (ValidationError), not across registries', () => {
    const registry = new RegionRegistry()
    createRegion({ registry, name: 'users' })
    expect(() => createRegion({ registry, name: 'users' })).toThrow(ValidationError)
    expect(() => createRegion({ registry, name: 'users' })).toThrow(/"users" already exists/)
    expect(createRegion({ registry: new RegionRegistry(), name: 'users' }).name).toBe('users')
  })

  it('rejects empty names and a registry that is not a RegionRegistry', () => {
    const registry = new RegionRegistry()
    expect(() => createRegion({ registry, name: '' })).toThrow(ValidationError)
    expect(() => createRegion({ registry, name: '   ' })).toThrow(ValidationError)
    expect(() => createRegion({ registry: {} as never })).toThrow(ValidationError)
  })

  it('generates a unique name when none is given', () => {
    const registry = new RegionRegistry()
    const names = Array.from({ length: 50 }, () => createRegion({ registry }).name)
    expect(new Set(names).size).toBe(50)
    for (const name of names) expect(name).toMatch(/\S/)
    expect(registry.size).toBe(50)
  })

  it('knows every region by name', () => {
    const registry = new RegionRegistry()
    const users = createRegion({ registry, name: 'users' })
    const sessions = registry.createRegion({ name: 'sessions' })
    expect(registry.get('users')).toBe(users)
    expect(registry.get('sessions')).toBe(sessions)
    expect(registry.get('nope')).toBeUndefined()
    expect(registry.has('users')).toBe(true)
    expect(registry.list()).toEqual([users, sessions])
    expect([...registry]).toEqual([users, sessions])
    expect(users.registry).toBe(registry)
  })

  it('regions without a registry option go to the process-wide `regions`', async () => {
    const name = `corral-region-test-${process.pid}-${Math.random().toString(36).slice(2)}`
    const region = createRegion({ name })
    try {
      expect(regions.get(name)).toBe(region)
      expect(region.registry).toBe(regions)
    } finally {
      await region.close()
    }
    expect(regions.get(name)).toBeUndefined()
  })

  it('close() removes the region, frees its name, and makes it unusable', async () => {
    const registry = new RegionRegistry()
    const region = createRegion({ registry, name: 'temp' }).configure('memory')
    await region.set('k', 'v')
    await region.close()
    await region.close()
    expect(registry.get('temp')).toBeUndefined()
    expect(registry.size).toBe(0)
    await expect(region.get('k')).rejects.toBeInstanceOf(RegionNotConfiguredError)
    await expect(region.get('k')).rejects.toThrow(/closed/)
    expect(() => region.configure('memory', { replaceExistingBackend: true })).toThrow(ValidationError)
    const again = createRegion({ registry, name: 'temp' })
    expect(registry.get('temp')).toBe(again)
    expect(again).not.toBe(region)
  })

  it('close() releases a backend the region created but never an instance the user passed in', async () => {
    const registry = new RegionRegistry()
    const owned = createRegion({ registry }).configure('memory')
    const ownedBackend = owned.backend
    await owned.set('k', 'v')

    const mine = new MemoryBackend()
    const borrowing = createRegion({ registry }).configure(mine)
    await borrowing.set('k', 'mine')

    await registry.close()
    expect(registry.size).toBe(0)
    expect(await ownedBackend.get('k')).toBe(NO_VALUE)
    expect(await mine.get('k')).toMatchObject({ payload: 'mine' })
  })

  it('a backend the region created and then replaced is released by the time the region closes', async () => {
    const closed: string[] = []
    const name = `closing-${Math.random().toString(36).slice(2)}`
    registerBackend(name, () => {
      const backend = new MemoryBackend()
      return Object.assign(backend, {
        close: async () => {
          closed.push('first')
        },
      })
    })
    const { region } = setup()
    region.configure(name)
    region.configure('memory', { replaceExistingBackend: true })
    await region.close()
    expect(closed).toEqual(['first'])
  })

  it('a configure() that fails validation changes nothing: a borrowed backend is still not closed', async () => {
    const mine = new MemoryBackend()
    const { region } = setup()
    region.configure(mine)
    await region.set('k', 'mine')
    expect(() =>
      region.configure('memory', { replaceExistingBackend: true, wrap: [{ not: 'a proxy' } as never] }),
    ).toThrow(ValidationError)
    expect(region.backend).toBe(mine)
    await region.close()
    expect(await mine.get('k')).toMatchObject({ payload: 'mine' })
  })
})
