import { describe, expect, it } from 'vitest'
import {
  MemoryBackend,
  NO_VALUE,
  RegionNotConfiguredError,
  RegionRegistry,
  ValidationError,
  cachedMethod,
  createRegion,
  type KeyGenerator,
  type MultiKeyGenerator,
  type RegionOptions,
} from './index.js'

const START = 1_700_000_000_000

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

/** A configured memory region on a backend instance the test can inspect, with a hand-moved clock. */
function setup(options: Omit<RegionOptions, 'registry' | 'clock'> = {}, expirationTime: number | undefined = 60) {
  const registry = new RegionRegistry()
  const time = manualClock()
  const backend = new MemoryBackend()
  const region = createRegion({ registry, clock: time.clock, ...options }).configure(backend, {
    ...(expirationTime !== undefined ? { expirationTime } : {}),
  })
  return { registry, time, backend, region }
}

describe('cacheOnArguments', () => {
  it('caches by arguments: the function runs once per distinct argument list', async () => {
    const { region } = setup()
    const calls: unknown[][] = []
    const add = region.cacheOnArguments(async function add(a: number, b: number) {
      calls.push([a, b])
      return a + b
    })
    expect(await add(1, 2)).toBe(3)
    expect(await add(1, 2)).toBe(3)
    expect(await add(2, 1)).toBe(3)
    expect(calls).toEqual([
      [1, 2],
      [2, 1],
    ])
  })

  it('stores under the default key name|a b', async () => {
    const { region, backend } = setup()
    const getUser = region.cacheOnArguments(async function getUser(id: number, scope: string) {
      return `${scope}:${id}`
    })
    expect(getUser.key(5, 'admin')).toBe('getUser|5 admin')
    await getUser(5, 'admin')
    expect(await region.get('getUser|5 admin')).toBe('admin:5')
    expect(await backend.get('getUser|5 admin')).toMatchObject({ payload: 'admin:5' })
  })

  it('puts the namespace in the key: name|ns|a b, so same-named functions do not collide', async () => {
    const { region } = setup()
    const v1 = region.cacheOnArguments(async function load(id: number) {
      return `v1-${id}`
    })
    const v2 = region.cacheOnArguments(
      async function load(id: number) {
        return `v2-${id}`
      },
      { namespace: 'v2' },
    )
    expect(v2.key(1)).toBe('load|v2|1')
    expect(await v1(1)).toBe('v1-1')
    expect(await v2(1)).toBe('v2-1')
    expect(await region.get('load|v2|1')).toBe('v2-1')
  })

  it('renders object arguments as stable JSON, so key order does not matter', async () => {
    const { region } = setup()
    let calls = 0
    const search = region.cacheOnArguments(async function search(query: Record<string, unknown>, page: number) {
      calls++
      return `${JSON.stringify(query)}@${page}`
    })
    expect(search.key({ b: 2, a: { d: 1, c: 2 } }, 1)).toBe('search|{"a":{"c":2,"d":1},"b":2} 1')
    await search({ b: 2, a: 1 }, 1)
    await search({ a: 1, b: 2 }, 1)
    expect(calls).toBe(1)
    await search({ a: 1, b: 3 }, 1)
    expect(calls).toBe(2)
  })

  it('rejects an anonymous function without a namespace (ValidationError), and keys it by namespace with one', async () => {
    const { region } = setup()
    expect(() => region.cacheOnArguments(async (id: number) => id)).toThrow(ValidationError)
    expect(() => region.cacheOnArguments(async (id: number) => id)).toThrow(/namespace/)
    const named = region.cacheOnArguments(async (id: number) => id * 2, { namespace: 'double' })
    expect(named.key(4)).toBe('double|4')
    expect(await named(4)).toBe(8)
    expect(await region.get('double|4')).toBe(8)
  })

  it('rejects something that is not a function', () => {
    const { region } = setup()
    expect(() => region.cacheOnArguments('nope' as never)).toThrow(ValidationError)
  })

  it("uses the region's keyGenerator, and a per-decorator keyGenerator over it", async () => {
    const regionGenerator: KeyGenerator = (namespace, fn) => {
      return (...args) => `R:${namespace ?? '-'}:${fn.name}:${args.join(',')}`
    }
    const { region } = setup({ keyGenerator: regionGenerator })
    const viaRegion = region.cacheOnArguments(async function viaRegion(a: number, b: number) {
      return a * b
    })
    expect(viaRegion.key(2, 3)).toBe('R:-:viaRegion:2,3')
    await viaRegion(2, 3)
    expect(await region.get('R:-:viaRegion:2,3')).toBe(6)

    const viaOption = region.cacheOnArguments(
      async function viaOption(a: number) {
        return a
      },
      {
        namespace: 'ns',
        keyGenerator:
          (namespace) =>
          (...args) =>
            `D:${namespace}:${args.join('+')}`,
      },
    )
    await viaOption(9)
    expect(await region.get('D:ns:9')).toBe(9)
  })

  it('renders each argument with toStr', async () => {
    const { region } = setup()
    let calls = 0
    const lookup = region.cacheOnArguments(
      async function lookup(email: string) {
        calls++
        return email
      },
      { toStr: (arg) => String(arg).toLowerCase() },
    )
    expect(lookup.key('Ann@Example.com')).toBe('lookup|ann@example.com')
    expect(await lookup('Ann@Example.com')).toBe('Ann@Example.com')
    expect(await lookup('ann@example.COM')).toBe('Ann@Example.com')
    expect(calls).toBe(1)
  })

  it('.invalidate(...args) deletes one entry: the next call runs the function again', async () => {
    const { region } = setup()
    let calls = 0
    const load = region.cacheOnArguments(async function load(id: number) {
      calls++
      return `${id}#${calls}`
    })
    await load(1)
    await load(2)
    await load.invalidate(1)
    await load.invalidate(1)
    expect(await load(1)).toBe('1#3')
    expect(await load(2)).toBe('2#2')
    expect(calls).toBe(3)
  })

  it('.set(value, ...args) stores a value without calling the function; .get(...args) reads without calling', async () => {
    const { region } = setup()
    let calls = 0
    const load = region.cacheOnArguments(async function load(id: number) {
      calls++
      return `computed-${id}`
    })
    expect(await load.get(1)).toBe(NO_VALUE)
    await load.set('preset', 1)
    expect(await load.get(1)).toBe('preset')
    expect(await load(1)).toBe('preset')
    expect(calls).toBe(0)
  })

  it('.refresh(...args) calls the function, stores and returns its value, whatever is cached', async () => {
    const { region } = setup()
    let calls = 0
    const load = region.cacheOnArguments(async function load(id: number) {
      calls++
      return `${id}#${calls}`
    })
    expect(await load(1)).toBe('1#1')
    expect(await load.refresh(1)).toBe('1#2')
    expect(await load(1)).toBe('1#2')
    expect(calls).toBe(2)
  })

  it('turns a synchronous function into one that returns a promise of its value', async () => {
    const { region } = setup()
    let calls = 0
    const square = region.cacheOnArguments(function square(n: number) {
      calls++
      return n * n
    })
    const result = square(3)
    expect(result).toBeInstanceOf(Promise)
    expect(await result).toBe(9)
    expect(await square(3)).toBe(9)
    expect(calls).toBe(1)
  })

  it('.original is the undecorated function and the wrapper keeps its name', () => {
    const { region } = setup()
    async function load(id: number) {
      return id
    }
    const cached = region.cacheOnArguments(load)
    expect(cached.original).toBe(load)
    expect(cached.name).toBe('load')
  })

  it('applies a fixed expirationTime to calls and to .get', async () => {
    const { region, time } = setup({}, 3600)
    let calls = 0
    const load = region.cacheOnArguments(
      async function load() {
        calls++
        return calls
      },
      { expirationTime: '10s' },
    )
    expect(await load()).toBe(1)
    time.advance(11)
    expect(await load.get()).toBe(NO_VALUE)
    expect(await load()).toBe(2)
    expect(await load.get()).toBe(2)
  })

  it('rejects an invalid expirationTime when decorating', () => {
    const { region } = setup()
    expect(() => region.cacheOnArguments(async function load() {}, { expirationTime: 'whenever' as never })).toThrow(
      ValidationError,
    )
  })

  it('evaluates a callable expirationTime on every call', async () => {
    const { region, time } = setup({}, 3600)
    let ttl = 10
    let evaluations = 0
    let calls = 0
    const load = region.cacheOnArguments(
      async function load() {
        calls++
        return `v${calls}`
      },
      {
        expirationTime: () => {
          evaluations++
          return ttl
        },
      },
    )
    expect(await load()).toBe('v1')
    time.advance(5)
    expect(await load()).toBe('v1') // 5s old, ttl 10s
    ttl = 2
    expect(await load()).toBe('v2') // 5s old, ttl now 2s
    time.advance(1)
    expect(await load()).toBe('v2')
    ttl = -1
    time.advance(86_400)
    expect(await load()).toBe('v2') // never expires for this call
    expect(evaluations).toBe(5)
    expect(calls).toBe(2)
  })

  it('rejects a call whose callable expirationTime returns an invalid duration', async () => {
    const { region } = setup()
    const load = region.cacheOnArguments(async function load() {}, { expirationTime: () => 'soon' as never })
    await expect(load()).rejects.toBeInstanceOf(ValidationError)
  })

  it('shouldCache decides whether the result is stored', async () => {
    const { region } = setup()
    let calls = 0
    const find = region.cacheOnArguments(
      async function find(id: number) {
        calls++
        return id > 0 ? { id } : null
      },
      { shouldCache: (value) => value !== null },
    )
    expect(await find(-1)).toBeNull()
    expect(await find(-1)).toBeNull()
    expect(await find(1)).toEqual({ id: 1 })
    expect(await find(1)).toEqual({ id: 1 })
    expect(calls).toBe(3)
    expect(await find.get(-1)).toBe(NO_VALUE)
  })

  it('an error from the function reaches the caller and nothing is cached', async () => {
    const { region } = setup()
    let fail = true
    const load = region.cacheOnArguments(async function load(id: number) {
      if (fail) throw new Error(`cannot load ${id}`)
      return id
    })
    await expect(load(1)).rejects.toThrow('cannot load 1')
    fail = false
    expect(await load(1)).toBe(1)
  })

  it('keeps `this` for methods, in calls and in refresh', async () => {
    const { region } = setup()
    const service = {
      prefix: 'user:',
      load: region.cacheOnArguments(async function load(this: { prefix: string }, id: number) {
        return `${this.prefix}${id}`
      }),
    }
    expect(await service.load(1)).toBe('user:1')
    expect(await service.load.refresh.call(service, 2)).toBe('user:2')
    expect(await service.load.get(2)).toBe('user:2')
  })

  it('can decorate before the region is configured', async () => {
    const registry = new RegionRegistry()
    const region = createRegion({ registry })
    const load = region.cacheOnArguments(async function load(id: number) {
      return id
    })
    await expect(load(1)).rejects.toBeInstanceOf(RegionNotConfiguredError)
    region.configure('memory')
    expect(await load(1)).toBe(1)
  })
})

describe('cacheMultiOnArguments', () => {
  function recordingFetch() {
    const calls: number[][] = []
    const fetchUsers = async function fetchUsers(...ids: number[]) {
      calls.push(ids)
      return ids.map((id) => `user-${id}`)
    }
    return { calls, fetchUsers }
  }

  it('returns one value per argument, in order, and the function receives only the missing arguments', async () => {
    const { region } = setup()
    const { calls, fetchUsers } = recordingFetch()
    const users = region.cacheMultiOnArguments(fetchUsers)
    expect(await users(1, 2)).toEqual(['user-1', 'user-2'])
    expect(await users(3, 1, 2, 4)).toEqual(['user-3', 'user-1', 'user-2', 'user-4'])
    expect(calls).toEqual([
      [1, 2],
      [3, 4],
    ])
    expect(await users(4, 3)).toEqual(['user-4', 'user-3'])
    expect(await users()).toEqual([])
    expect(calls).toHaveLength(2)
  })

  it('stores one name|arg key per argument, with the namespace when given', async () => {
    const { region } = setup()
    const { fetchUsers } = recordingFetch()
    const users = region.cacheMultiOnArguments(fetchUsers, { namespace: 'v2' })
    expect(users.keys(1, 2)).toEqual(['fetchUsers|v2|1', 'fetchUsers|v2|2'])
    await users(1)
    expect(await region.get('fetchUsers|v2|1')).toBe('user-1')
  })

  it('rejects an anonymous function without a namespace', () => {
    const { region } = setup()
    expect(() => region.cacheMultiOnArguments(async (...ids: number[]) => ids)).toThrow(ValidationError)
  })

  it("uses the region's multiKeyGenerator, and a per-decorator keyGenerator over it", async () => {
    const regionGenerator: MultiKeyGenerator =
      (_ns, fn) =>
      (...args) =>
        args.map((arg) => `R/${fn.name}/${arg}`)
    const { region } = setup({ multiKeyGenerator: regionGenerator })
    const { fetchUsers } = recordingFetch()
    await region.cacheMultiOnArguments(fetchUsers)(1)
    expect(await region.get('R/fetchUsers/1')).toBe('user-1')
    await region.cacheMultiOnArguments(fetchUsers, {
      keyGenerator:
        () =>
        (...args) =>
          args.map((a) => `D/${a}`),
    })(2)
    expect(await region.get('D/2')).toBe('user-2')
  })

  it('a function returning the wrong number of values is a ValidationError', async () => {
    const { region } = setup()
    const broken = region.cacheMultiOnArguments(async function broken(..._ids: number[]) {
      return ['only one']
    })
    await expect(broken(1, 2)).rejects.toBeInstanceOf(ValidationError)
  })

  it('asDict with a Map: missing entries are neither cached nor returned', async () => {
    const { region } = setup()
    const calls: number[][] = []
    const found = region.cacheMultiOnArguments(
      async function found(...ids: number[]) {
        calls.push(ids)
        return new Map(ids.filter((id) => id % 2 === 1).map((id) => [id, { id }]))
      },
      { asDict: true },
    )
    const first = await found(1, 2, 3)
    expect(first).toBeInstanceOf(Map)
    expect([...(first as unknown as Map<number, unknown>)]).toEqual([
      [1, { id: 1 }],
      [3, { id: 3 }],
    ])
    expect(await region.getMulti(['found|1', 'found|2', 'found|3'])).toEqual([{ id: 1 }, NO_VALUE, { id: 3 }])
    // 2 was not cached, so it is asked for again; 1 and 3 are not
    const second = await found(3, 2, 1)
    expect([...(second as unknown as Map<number, unknown>)]).toEqual([
      [3, { id: 3 }],
      [1, { id: 1 }],
    ])
    expect(calls).toEqual([[1, 2, 3], [2]])
  })

  it('asDict with an object: missing entries are neither cached nor returned', async () => {
    const { region } = setup()
    const calls: string[][] = []
    const prices = region.cacheMultiOnArguments(
      async function prices(...skus: string[]) {
        calls.push(skus)
        return Object.fromEntries(skus.filter((sku) => sku !== 'gone').map((sku) => [sku, sku.length]))
      },
      { asDict: true },
    )
    expect(await prices('ab', 'gone', 'abc')).toEqual({ ab: 2, abc: 3 })
    expect(await prices('abc', 'gone')).toEqual({ abc: 3 })
    expect(calls).toEqual([['ab', 'abc', 'gone'], ['gone']])
    expect(await region.get('prices|gone')).toBe(NO_VALUE)
  })

  it('asDict keeps the Map kind when every value comes from the cache', async () => {
    const { region } = setup()
    let calls = 0
    const found = region.cacheMultiOnArguments(
      async function found(...ids: number[]) {
        calls++
        return new Map(ids.map((id) => [id, `#${id}`]))
      },
      { asDict: true },
    )
    await found.refresh(1)
    const cachedOnly = await found(1)
    expect(calls).toBe(1)
    expect(cachedOnly).toBeInstanceOf(Map)
    expect((cachedOnly as unknown as Map<number, string>).get(1)).toBe('#1')
  })

  it('asDict answers with a Map when values were preset with a Map and the function has not run yet', async () => {
    const { region } = setup()
    let calls = 0
    const found = region.cacheMultiOnArguments(
      async function found(...ids: number[]) {
        calls++
        return new Map(ids.map((id) => [id, `#${id}`]))
      },
      { asDict: true },
    )
    await found.set(new Map([[7, 'preset']]))
    const result = await found(7)
    expect(calls).toBe(0)
    expect(result).toBeInstanceOf(Map)
    expect((result as unknown as Map<number, string>).get(7)).toBe('preset')
  })

  it('asDict rejects a function that returns neither a Map nor an object', async () => {
    const { region } = setup()
    async function bad(..._ids: number[]): Promise<unknown> {
      return 'nope'
    }
    const cached = region.cacheMultiOnArguments(bad as (...ids: number[]) => Promise<Map<number, unknown>>, {
      asDict: true,
    })
    await expect(cached(1)).rejects.toBeInstanceOf(ValidationError)
  })

  it('.invalidate(...args) forgets those arguments only', async () => {
    const { region } = setup()
    const { calls, fetchUsers } = recordingFetch()
    const users = region.cacheMultiOnArguments(fetchUsers)
    await users(1, 2, 3)
    await users.invalidate(1, 3)
    await users.invalidate(1, 3)
    expect(await users(1, 2, 3)).toEqual(['user-1', 'user-2', 'user-3'])
    expect(calls).toEqual([
      [1, 2, 3],
      [1, 3],
    ])
  })

  it('.set takes a Map or an object of argument → value; .get reads without calling', async () => {
    const { region } = setup()
    const { calls, fetchUsers } = recordingFetch()
    const users = region.cacheMultiOnArguments(fetchUsers)
    await users.set(new Map([[1, 'preset-1']]))
    await users.set({ 2: 'preset-2' })
    expect(await users.get(1, 2, 3)).toEqual(['preset-1', 'preset-2', NO_VALUE])
    expect(await users(1, 2)).toEqual(['preset-1', 'preset-2'])
    expect(calls).toEqual([])
  })

  it('.refresh(...args) calls the function for every argument and stores the results', async () => {
    const { region } = setup()
    let round = 0
    const users = region.cacheMultiOnArguments(async function users(...ids: number[]) {
      round++
      return ids.map((id) => `${id}@${round}`)
    })
    expect(await users(1, 2)).toEqual(['1@1', '2@1'])
    expect(await users.refresh(2, 1)).toEqual(['2@2', '1@2'])
    expect(await users(1, 2)).toEqual(['1@2', '2@2'])
    expect(round).toBe(2)
  })

  it('shouldCache applies per value', async () => {
    const { region } = setup()
    const users = region.cacheMultiOnArguments(
      async function users(...ids: number[]) {
        return ids.map((id) => (id > 0 ? `u${id}` : null))
      },
      { shouldCache: (value) => value !== null },
    )
    expect(await users(1, -1)).toEqual(['u1', null])
    expect(await users.get(1, -1)).toEqual(['u1', NO_VALUE])
  })

  it('evaluates a callable expirationTime on every call', async () => {
    const { region, time } = setup({}, 3600)
    let ttl = 10
    let round = 0
    const users = region.cacheMultiOnArguments(
      async function users(...ids: number[]) {
        round++
        return ids.map((id) => `${id}@${round}`)
      },
      { expirationTime: () => ttl },
    )
    await users(1)
    time.advance(5)
    expect(await users(1)).toEqual(['1@1'])
    ttl = 2
    expect(await users(1)).toEqual(['1@2'])
  })
})

describe('@region.cached() (TC39 method decorator)', () => {
  it('caches a method by its arguments, with `this` bound to the instance', async () => {
    const { region } = setup()
    class UserService {
      calls = 0
      constructor(readonly prefix: string) {}

      @region.cached()
      async load(id: number): Promise<string> {
        this.calls++
        return `${this.prefix}${id}`
      }
    }
    const service = new UserService('user:')
    expect(await service.load(1)).toBe('user:1')
    expect(await service.load(1)).toBe('user:1')
    expect(service.calls).toBe(1)
    expect(await region.get('load|1')).toBe('user:1')
  })

  it('keys by arguments only, as dogpile leaves `self` out: instances share entries for the same arguments', async () => {
    const { region } = setup()
    class Greeter {
      constructor(readonly greeting: string) {}
      @region.cached()
      async greet(name: string): Promise<string> {
        return `${this.greeting}, ${name}`
      }
    }
    expect(await new Greeter('Hello').greet('Ann')).toBe('Hello, Ann')
    expect(await new Greeter('Bonjour').greet('Ann')).toBe('Hello, Ann')
    expect(await new Greeter('Bonjour').greet('Bob')).toBe('Bonjour, Bob')
  })

  it('passes its options: namespace, expirationTime, shouldCache', async () => {
    const { region, time } = setup({}, 3600)
    class Prices {
      calls = 0
      @region.cached({ namespace: 'prices', expirationTime: 10, shouldCache: (value) => value !== 0 })
      async price(sku: string): Promise<number> {
        this.calls++
        return sku === 'free' ? 0 : sku.length
      }
    }
    const prices = new Prices()
    expect(await prices.price('abc')).toBe(3)
    expect(await region.get('price|prices|abc')).toBe(3)
    await prices.price('free')
    await prices.price('free')
    expect(prices.calls).toBe(3)
    time.advance(11)
    await prices.price('abc')
    expect(prices.calls).toBe(4)
  })

  it('cachedMethod(instance, name) reaches the helpers, typed: .invalidate/.set/.get/.key/.original', async () => {
    const { region } = setup()
    class Repo {
      calls = 0
      @region.cached({ namespace: 'repo' })
      async find(id: number): Promise<string> {
        this.calls++
        return `found-${id}-${this.calls}`
      }
    }
    const repo = new Repo()
    const find = cachedMethod(repo, 'find')
    expect(await repo.find(1)).toBe('found-1-1')
    expect(find.key(1)).toBe('find|repo|1')
    await find.invalidate(1)
    expect(await find.get(1)).toBe(NO_VALUE)
    expect(await repo.find(1)).toBe('found-1-2')
    await find.set('preset', 2)
    expect(await repo.find(2)).toBe('preset')
    expect(repo.calls).toBe(2)
    expect(typeof find.original).toBe('function')
  })

  it('instance.method.refresh(...args) runs the method on that instance', async () => {
    const { region } = setup()
    class Repo {
      version = 1
      @region.cached()
      async current(id: number): Promise<string> {
        return `${id}@v${this.version}`
      }
    }
    const repo = new Repo()
    expect(await repo.current(1)).toBe('1@v1')
    repo.version = 2
    expect(await cachedMethod(repo, 'current').refresh(1)).toBe('1@v2')
    expect(await repo.current(1)).toBe('1@v2')
  })

  it('a subclass override of a decorated method is the one that runs', async () => {
    const { region } = setup()
    class Base {
      @region.cached({ namespace: 'base' })
      async name(id: number): Promise<string> {
        return `base-${id}`
      }
    }
    class Derived extends Base {
      override async name(id: number): Promise<string> {
        return `derived-${id}`
      }
    }
    expect(await new Derived().name(1)).toBe('derived-1')
    expect(await new Base().name(1)).toBe('base-1')
  })

  it('works on static methods, refresh included', async () => {
    const { region } = setup()
    class Config {
      static version = 1
      @region.cached({ namespace: 'config' })
      static async read(key: string): Promise<string> {
        return `${key}@${this.version}`
      }
    }
    expect(await Config.read('a')).toBe('a@1')
    Config.version = 2
    expect(await Config.read('a')).toBe('a@1')
    expect(await cachedMethod(Config, 'read').refresh('a')).toBe('a@2')
    expect(await Config.read('a')).toBe('a@2')
  })

  it('works on private methods', async () => {
    const { region } = setup()
    class Service {
      calls = 0
      @region.cached({ namespace: 'private' })
      async #load(id: number): Promise<number> {
        this.calls++
        return id + 1
      }
      load(id: number): Promise<number> {
        return this.#load(id)
      }
    }
    const service = new Service()
    expect(await service.load(1)).toBe(2)
    expect(await service.load(1)).toBe(2)
    expect(service.calls).toBe(1)
  })

  it('decorates a class before its region is configured', async () => {
    const registry = new RegionRegistry()
    const region = createRegion({ registry })
    class Service {
      @region.cached()
      async load(id: number): Promise<number> {
        return id * 10
      }
    }
    const service = new Service()
    await expect(service.load(1)).rejects.toBeInstanceOf(RegionNotConfiguredError)
    region.configure('memory')
    expect(await service.load(1)).toBe(10)
    expect(await region.get('load|1')).toBe(10)
  })

  it('the helpers are on the method itself too, bound to its instance, for JavaScript callers', async () => {
    const { region } = setup()
    class Repo {
      version = 1
      @region.cached()
      async current(id: number): Promise<string> {
        return `${id}@v${this.version}`
      }
    }
    const repo = new Repo()
    // what `repo.current` is at run time; TypeScript keeps the declared type, which is what cachedMethod() is for
    const current = repo.current as unknown as ReturnType<typeof cachedMethod<Repo, 'current'>>
    expect(await repo.current(1)).toBe('1@v1')
    repo.version = 2
    expect(await current.refresh(1)).toBe('1@v2')
    await current.invalidate(1)
    expect(await current.get(1)).toBe(NO_VALUE)
  })

  it('cachedMethod() refuses a method that is not cached, naming it', () => {
    const { region } = setup()
    class Service {
      @region.cached()
      async cached(id: number): Promise<number> {
        return id
      }
      async plain(id: number): Promise<number> {
        return id
      }
    }
    expect(() => cachedMethod(new Service(), 'plain')).toThrow(ValidationError)
    expect(() => cachedMethod(new Service(), 'plain')).toThrow('Service.plain is not a method decorated')
    expect(() => cachedMethod(new Service(), 'cached')).not.toThrow()
  })

  it('refuses to decorate anything but a method', () => {
    const { region } = setup()
    const decorator = region.cached() as unknown as (target: unknown, context: { kind: string }) => unknown
    expect(() => decorator(undefined, { kind: 'field' })).toThrow(ValidationError)
  })
})
