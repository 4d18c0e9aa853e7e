import { describe, expect, it } from 'vitest'
import { CachedValue, NO_VALUE, type NoValue } from '../cached-value.js'
import { ValidationError } from '../errors.js'
import { RegionRegistry, createRegion } from '../registry.js'
import type { CacheBackend } from './api.js'
import { MemoryBackend } from './memory.js'
import { ProxyBackend } from './proxy.js'

function newRegion() {
  return createRegion({ registry: new RegionRegistry() })
}

/** dogpile's LoggingProxy: records every set, then passes it on. */
class RecordingProxy extends ProxyBackend {
  readonly sets: string[] = []
  override set(key: string, value: CachedValue): Promise<void> {
    this.sets.push(key)
    return this.proxied.set(key, value)
  }
}

/** Transforms what is stored: string payloads are upper-cased on the way in. */
class UpperCaseProxy extends ProxyBackend {
  override set(key: string, value: CachedValue): Promise<void> {
    const payload = typeof value.payload === 'string' ? value.payload.toUpperCase() : value.payload
    return this.proxied.set(key, new CachedValue(payload, value.metadata))
  }
}

describe('ProxyBackend', () => {
  it('a subclass overriding set sees every write and passes it on', async () => {
    const proxy = new RecordingProxy()
    const region = newRegion().configure('memory', { wrap: [proxy] })
    await region.set('a', 1)
    await region.getOrCreate('b', () => 2)
    await region.getOrCreate('b', () => 3)
    expect(proxy.sets).toEqual(['a', 'b'])
    expect(await region.getMulti(['a', 'b'])).toEqual([1, 2])
  })

  it('a subclass can transform what is stored', async () => {
    const region = newRegion().configure('memory', { wrap: [UpperCaseProxy] })
    expect(await region.getOrCreate('k', () => 'hello')).toBe('hello')
    expect(await region.get('k')).toBe('HELLO')
  })

  it('wrap: [A, B] chains A -> B -> backend, accepting classes and instances', async () => {
    const log: string[] = []
    class A extends ProxyBackend {
      override set(key: string, value: CachedValue): Promise<void> {
        log.push(`A:${key}`)
        return this.proxied.set(key, value)
      }
      override get(key: string): Promise<CachedValue | NoValue> {
        log.push(`A.get:${key}`)
        return this.proxied.get(key)
      }
    }
    class B extends ProxyBackend {
      constructor(readonly label: string) {
        super()
      }
      override set(key: string, value: CachedValue): Promise<void> {
        log.push(`${this.label}:${key}`)
        return this.proxied.set(key, value)
      }
      override get(key: string): Promise<CachedValue | NoValue> {
        log.push(`${this.label}.get:${key}`)
        return this.proxied.get(key)
      }
    }
    const backend = new MemoryBackend()
    const b = new B('B')
    const region = newRegion().configure(backend, { wrap: [A, b] })
    await region.set('k', 'v')
    expect(await region.get('k')).toBe('v')
    expect(log).toEqual(['A:k', 'B:k', 'A.get:k', 'B.get:k'])
    // the outermost proxy is the region's backend; each proxy reaches the next as this.proxied
    expect(region.backend).toBeInstanceOf(A)
    expect((region.backend as A).proxied).toBe(b)
    expect(b.proxied).toBe(backend)
    expect(await backend.get('k')).toMatchObject({ payload: 'v' })
  })

  it('a proxy that overrides get sees every read, hits of getOrCreate included', async () => {
    let reads = 0
    class CountingProxy extends ProxyBackend {
      override get(key: string): Promise<CachedValue | NoValue> {
        reads++
        return this.proxied.get(key)
      }
    }
    const region = newRegion().configure('memory', { wrap: [CountingProxy] })
    await region.getOrCreate('k', () => 1)
    await region.getOrCreate('k', () => 1)
    await region.get('k')
    expect(reads).toBe(3)
  })

  it('a proxy can answer reads itself, as a fallback', async () => {
    class DefaultsProxy extends ProxyBackend {
      override async get(key: string): Promise<CachedValue | NoValue> {
        const found = await this.proxied.get(key)
        return found === NO_VALUE && key === 'greeting' ? CachedValue.create('hi', Date.now()) : found
      }
    }
    const region = newRegion().configure('memory', { wrap: [DefaultsProxy], expirationTime: 3600 })
    expect(await region.get('greeting')).toBe('hi')
    expect(await region.get('other')).toBe(NO_VALUE)
  })

  it('passes everything it does not override through to the backend', async () => {
    const backend = new MemoryBackend()
    class PassThrough extends ProxyBackend {}
    const region = newRegion().configure(backend, { wrap: [PassThrough] })
    expect(region.describe().backend).toBe('memory')
    await region.setMulti({ a: 1, b: 2 })
    expect(await region.getMulti(['a', 'b'])).toEqual([1, 2])
    await region.deleteMulti(['a'])
    await region.delete('b')
    expect(backend.count()).toBe(0)
  })

  it("passes the backend's key mangler through", async () => {
    class Prefixing extends MemoryBackend {
      readonly keyMangler = (key: string) => `p:${key}`
    }
    const backend = new Prefixing()
    const region = newRegion().configure(backend, { wrap: [RecordingProxy] })
    await region.set('k', 1)
    expect((region.backend as RecordingProxy).sets).toEqual(['p:k'])
    expect(await backend.get('p:k')).toMatchObject({ payload: 1 })
  })

  it('wrap entries that are not ProxyBackends are a ValidationError; the region stays unconfigured', () => {
    const region = newRegion()
    class NotAProxy {}
    expect(() => region.configure('memory', { wrap: [NotAProxy as never] })).toThrow(ValidationError)
    expect(() => region.configure('memory', { wrap: [{} as never] })).toThrow(ValidationError)
    expect(region.isConfigured).toBe(false)
  })

  it('a proxy used before it wraps anything says so', () => {
    const proxy = new RecordingProxy()
    expect(() => proxy.proxied).toThrow(/not wrapping a backend/)
    const backend: CacheBackend = new MemoryBackend()
    expect(proxy.wrap(backend)).toBe(proxy)
    expect(proxy.proxied).toBe(backend)
  })
})
