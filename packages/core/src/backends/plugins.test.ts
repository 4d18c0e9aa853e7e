import { describe, expect, it } from 'vitest'
import { NO_VALUE } from '../cached-value.js'
import { PluginNotFoundError, ValidationError } from '../errors.js'
import { RegionRegistry, createRegion } from '../registry.js'
import { MemoryBackend } from './memory.js'
import { registerBackend, registeredBackends } from './plugins.js'

/** registerBackend is process-wide: every test registers its own names. */
const uniqueName = (base: string) => `${base}-${Math.random().toString(36).slice(2, 10)}`

function newRegion() {
  return createRegion({ registry: new RegionRegistry() })
}

describe('registerBackend', () => {
  it('memory and null are registered out of the box', () => {
    expect(registeredBackends()).toEqual(expect.arrayContaining(['memory', 'null']))
  })

  it('a registered factory is usable by name and receives the arguments', async () => {
    const name = uniqueName('tiered')
    const received: Array<Record<string, unknown>> = []
    registerBackend(name, (args) => {
      received.push(args)
      return new MemoryBackend({ maxEntries: Number(args.size) })
    })
    expect(registeredBackends()).toContain(name)
    const region = newRegion().configure(name, { arguments: { size: 1 } })
    expect(received).toEqual([{ size: 1 }])
    await region.set('a', 1)
    await region.set('b', 2)
    expect(await region.getMulti(['a', 'b'])).toEqual([NO_VALUE, 2])
  })

  it('each configure gets its own backend from the factory', async () => {
    const name = uniqueName('fresh')
    registerBackend(name, () => new MemoryBackend())
    const one = newRegion().configure(name)
    const two = newRegion().configure(name)
    await one.set('k', 'one')
    expect(await two.get('k')).toBe(NO_VALUE)
  })

  it('works from a config map too', async () => {
    const name = uniqueName('configured')
    registerBackend(name, (args) => new MemoryBackend(args))
    const region = newRegion().configureFromConfig({ 'c.backend': name, 'c.arguments.maxEntries': '5' }, 'c.')
    await region.set('k', 1)
    expect(await region.get('k')).toBe(1)
  })

  it('registering a name again replaces its factory', async () => {
    const name = uniqueName('replaced')
    registerBackend(name, () => {
      throw new Error('old factory')
    })
    registerBackend(name, () => new MemoryBackend())
    expect(newRegion().configure(name).isConfigured).toBe(true)
  })

  it('a factory that rejects its arguments fails configure with its error', () => {
    const name = uniqueName('picky')
    registerBackend(name, () => {
      throw new ValidationError('picky backend: argument "x" is required')
    })
    const region = newRegion()
    expect(() => region.configure(name)).toThrow(/argument "x" is required/)
    expect(region.isConfigured).toBe(false)
  })

  it.each([
    ['an empty name', '', () => new MemoryBackend()],
    ['a blank name', '  ', () => new MemoryBackend()],
    ['a name that is not a string', 42, () => new MemoryBackend()],
    ['a factory that is not a function', 'ok-name', new MemoryBackend()],
    ['a missing factory', 'ok-name', undefined],
  ])('rejects %s with a ValidationError', (_label, name, factory) => {
    const before = registeredBackends()
    expect(() => registerBackend(name as never, factory as never)).toThrow(ValidationError)
    expect(registeredBackends()).toEqual(before)
  })

  it('a factory that returns something that is not a backend fails configure with a ValidationError', () => {
    const name = uniqueName('broken')
    registerBackend(name, () => ({ name: 'broken' }) as never)
    const region = newRegion()
    expect(() => region.configure(name)).toThrow(ValidationError)
    expect(() => region.configure(name)).toThrow(new RegExp(`"${name}"`))
    expect(region.isConfigured).toBe(false)
  })

  it('an unregistered name is a PluginNotFoundError that lists the registered names', () => {
    expect(() => newRegion().configure(uniqueName('missing'))).toThrow(PluginNotFoundError)
    expect(() => newRegion().configure(uniqueName('missing'))).toThrow(/registered backends: .*memory/)
  })
})
