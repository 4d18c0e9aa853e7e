/**
 * `@region.cached()` as a legacy decorator (`experimentalDecorators` + `emitDecoratorMetadata`, as every NestJS
 * application compiles), on NestJS-style classes: an injectable service whose dependencies are resolved from the
 * constructor's `design:paramtypes`, a controller whose route decorators put metadata on the method, static and
 * overridden methods. This folder's tsconfig.json turns legacy decorators on; Vite's Oxc lowers them, and
 * decorators.types.test.ts type-checks this file with that tsconfig under --strict.
 */
import 'reflect-metadata'
import { describe, expect, it } from 'vitest'
import {
  MemoryBackend,
  NO_VALUE,
  RegionNotConfiguredError,
  RegionRegistry,
  ValidationError,
  cachedMethod,
  createRegion,
  type CacheRegion,
} from '../index.js'

// ------------------------------------------------------------ a NestJS-shaped container, in a few lines

type Constructor<T = object> = new (...args: never[]) => T
const injectable = new Set<Constructor>()

/** Nest's `@Injectable()`: marks a class the container may construct. */
function Injectable(): ClassDecorator {
  return (target) => {
    injectable.add(target as unknown as Constructor)
  }
}

/** Resolves a class and its constructor's dependencies from `design:paramtypes`, once per class. */
function createContainer() {
  const instances = new Map<Constructor, object>()
  const resolve = <T extends object>(type: Constructor<T>): T => {
    if (!injectable.has(type)) throw new Error(`${type.name} is not @Injectable()`)
    let instance = instances.get(type) as T | undefined
    if (instance === undefined) {
      const dependencies = (Reflect.getMetadata('design:paramtypes', type) ?? []) as Constructor[]
      instance = new type(...(dependencies.map(resolve) as never[]))
      instances.set(type, instance)
    }
    return instance
  }
  return { resolve }
}

const PATH = 'path'
/** Nest's `@Get(path)`: metadata on the method itself (`descriptor.value`). */
function Get(path: string): MethodDecorator {
  return (_target, _name, descriptor) => {
    Reflect.defineMetadata(PATH, path, descriptor.value as object)
  }
}

// ------------------------------------------------------------ the application

interface User {
  id: number
  name: string
  loadedBy: string
}

function setup(): { region: CacheRegion; backend: MemoryBackend } {
  const backend = new MemoryBackend()
  const region = createRegion({ name: 'users', registry: new RegionRegistry() }).configure(backend, {
    expirationTime: 60,
  })
  return { region, backend }
}

describe('@region.cached() with legacy decorators (experimentalDecorators)', () => {
  it('caches an injected service method; the container resolves it with its dependencies', async () => {
    const { region } = setup()

    @Injectable()
    class UsersRepository {
      queries = 0
      async find(id: number): Promise<User> {
        this.queries++
        return { id, name: `user ${id}`, loadedBy: 'repository' }
      }
    }

    @Injectable()
    class UsersService {
      constructor(private readonly repository: UsersRepository) {}

      @region.cached({ namespace: 'UsersService', expirationTime: '1m' })
      async find(id: number): Promise<User> {
        return this.repository.find(id)
      }
    }

    const container = createContainer()
    const service = container.resolve(UsersService)
    const repository = container.resolve(UsersRepository)
    expect(await service.find(1)).toEqual({ id: 1, name: 'user 1', loadedBy: 'repository' })
    expect(await service.find(1)).toEqual({ id: 1, name: 'user 1', loadedBy: 'repository' })
    expect(repository.queries).toBe(1)
    expect(await region.get('find|UsersService|1')).toEqual({ id: 1, name: 'user 1', loadedBy: 'repository' })
    // emitDecoratorMetadata still describes the decorated method
    expect(Reflect.getMetadata('design:paramtypes', UsersService.prototype, 'find')).toEqual([Number])
    expect(Reflect.getMetadata('design:returntype', UsersService.prototype, 'find')).toBe(Promise)
  })

  it('cachedMethod(instance, name) reaches the helpers, typed; refresh runs on that instance', async () => {
    const { region } = setup()

    @Injectable()
    class PricesService {
      version = 1
      calls = 0

      @region.cached({ namespace: 'prices' })
      async price(sku: string): Promise<string> {
        this.calls++
        return `${sku}@v${this.version}`
      }
    }

    const service = createContainer().resolve(PricesService)
    const price = cachedMethod(service, 'price')
    expect(await service.price('a')).toBe('a@v1')
    expect(price.key('a')).toBe('price|prices|a')
    expect(await price.get('a')).toBe('a@v1')

    service.version = 2
    expect(await price.refresh('a')).toBe('a@v2')
    expect(await service.price('a')).toBe('a@v2')

    await price.invalidate('a')
    expect(await price.get('a')).toBe(NO_VALUE)
    await price.set('preset', 'b')
    expect(await service.price('b')).toBe('preset')
    expect(await price('c')).toBe('c@v2')
    expect(price.original).toBe(Object.getOwnPropertyDescriptor(PricesService.prototype, 'price')?.value.original)
    expect(service.calls).toBe(3)
  })

  it('instance.method.refresh() cannot know the instance with legacy decorators, and says what to call', async () => {
    const { region } = setup()
    class Service {
      @region.cached()
      async load(id: number): Promise<number> {
        return id
      }
    }
    const load = new Service().load as unknown as { refresh(id: number): Promise<number> }
    expect(() => load.refresh(1)).toThrow(ValidationError)
    expect(() => load.refresh(1)).toThrow("cachedMethod(instance, 'load').refresh(...)")
  })

  it("keeps a route decorator's metadata on the method, whichever of the two is written first", async () => {
    const { region } = setup()

    class UsersController {
      @Get(':id')
      @region.cached({ namespace: 'above' })
      async above(id: string): Promise<string> {
        return `above ${id}`
      }

      @region.cached({ namespace: 'below' })
      @Get(':id/profile')
      async below(id: string): Promise<string> {
        return `below ${id}`
      }
    }

    // Nest's router reads the metadata from `prototype[method]`
    expect(Reflect.getMetadata(PATH, UsersController.prototype.above)).toBe(':id')
    expect(Reflect.getMetadata(PATH, UsersController.prototype.below)).toBe(':id/profile')
    const controller = new UsersController()
    expect(await controller.above('7')).toBe('above 7')
    expect(await controller.below('7')).toBe('below 7')
    expect(await region.get('above|above|7')).toBe('above 7')
    expect(await region.get('below|below|7')).toBe('below 7')
  })

  it('works on static methods, and a subclass override (calling super) stays in charge', async () => {
    const { region } = setup()
    let loads = 0

    class Config {
      static version = 1
      @region.cached({ namespace: 'config' })
      static async read(key: string): Promise<string> {
        loads++
        return `${key}@${this.version}`
      }
    }
    expect(await Config.read('a')).toBe('a@1')
    Config.version = 2
    expect(await Config.read('a')).toBe('a@1')
    expect(await cachedMethod(Config, 'read').refresh('a')).toBe('a@2')
    expect(loads).toBe(2)

    class Base {
      @region.cached({ namespace: 'base' })
      async name(id: number): Promise<string> {
        return `base-${id}`
      }
    }
    class Derived extends Base {
      override async name(id: number): Promise<string> {
        return `derived(${await super.name(id)})`
      }
    }
    expect(await new Derived().name(1)).toBe('derived(base-1)')
    expect(await region.get('name|base|1')).toBe('base-1')
    expect(() => cachedMethod(new Derived(), 'name')).toThrow(ValidationError)
  })

  it('decorates a class before its region is configured', async () => {
    const region = createRegion({ registry: new RegionRegistry() })
    class Service {
      @region.cached()
      async load(id: number): Promise<number> {
        return id * 10
      }
    }
    await expect(new Service().load(1)).rejects.toBeInstanceOf(RegionNotConfiguredError)
    region.configure('memory')
    expect(await new Service().load(1)).toBe(10)
  })

  it('refuses accessors, properties and unknown options when the class is defined', () => {
    const { region } = setup()
    const decorate = region.cached() as unknown as (target: object, name: string, descriptor?: object) => unknown
    expect(() => decorate({}, 'total', { get: () => 1, configurable: true })).toThrow(ValidationError)
    expect(() => decorate({}, 'count')).toThrow(ValidationError)
    expect(() => {
      class Service {
        @region.cached({ namespace: 'x', expiresIn: 5 } as never)
        async load(): Promise<number> {
          return 1
        }
      }
      return Service
    }).toThrow(ValidationError)
  })
})
