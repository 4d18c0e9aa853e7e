/**
 * A NestJS-style program, compiled with experimentalDecorators and emitDecoratorMetadata (as Nest applications
 * are), against the installed packages.
 */
import assert from 'node:assert/strict'
import { NO_VALUE, RegionRegistry, cachedMethod, createRegion } from '@corral/core'

const products = createRegion({ name: 'products', registry: new RegionRegistry() }).configure('memory', {
  expirationTime: '10m',
})

/** What Nest's @Injectable() is, to the compiler: a class decorator. */
function Injectable(): ClassDecorator {
  return () => {}
}

class ProductsRepository {
  queries = 0
  async find(sku: string): Promise<{ sku: string; price: number }> {
    this.queries++
    return { sku, price: 42 }
  }
}

@Injectable()
class ProductsService {
  constructor(private readonly repository: ProductsRepository) {}

  @products.cached({ namespace: 'ProductsService', expirationTime: '1m' })
  async find(sku: string): Promise<{ sku: string; price: number }> {
    return this.repository.find(sku)
  }
}

const repository = new ProductsRepository()
const service = new ProductsService(repository)
assert.deepEqual(await service.find('a'), { sku: 'a', price: 42 })
assert.deepEqual(await service.find('a'), { sku: 'a', price: 42 })
assert.equal(repository.queries, 1)
await cachedMethod(service, 'find').refresh('a')
assert.equal(repository.queries, 2)
await cachedMethod(service, 'find').invalidate('a')
assert.equal(await products.get('find|ProductsService|a'), NO_VALUE)
await products.close()
console.log('consumer (legacy decorators): ok')
