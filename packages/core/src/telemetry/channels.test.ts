/**
 * The `diagnostics_channel` tracing channels, subscribed by name as an APM tool would, without importing Corral's
 * channel objects.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import diagnosticsChannel from 'node:diagnostics_channel'
import { afterEach, describe, expect, it } from 'vitest'
import { RegionRegistry, createRegion, tracingChannels, type RegionOperationMessage } from '../index.js'
import { TRACING_CHANNEL_NAMES } from './channels.js'

type Event = 'start' | 'end' | 'asyncStart' | 'asyncEnd' | 'error'
const EVENTS: Event[] = ['start', 'end', 'asyncStart', 'asyncEnd', 'error']

const unsubscribes: Array<() => void> = []
afterEach(() => {
  for (const unsubscribe of unsubscribes.splice(0)) unsubscribe()
})

/** Subscribes to every event of `name`, recording `[event, a copy of the message]`. */
function record(name: string): Array<[Event, Record<string, unknown>]> {
  const seen: Array<[Event, Record<string, unknown>]> = []
  const channel = diagnosticsChannel.tracingChannel<unknown, RegionOperationMessage>(name)
  const handlers = Object.fromEntries(
    EVENTS.map((event) => [event, (message: RegionOperationMessage) => seen.push([event, { ...message }])]),
  ) as unknown as Parameters<typeof channel.subscribe>[0]
  channel.subscribe(handlers)
  unsubscribes.push(() => channel.unsubscribe(handlers))
  return seen
}

function setup() {
  return createRegion({ name: 'users', registry: new RegionRegistry() }).configure('memory', { expirationTime: 60 })
}

describe('tracing channels', () => {
  it('are named corral:<operation>, one per region operation', () => {
    expect(Object.values(TRACING_CHANNEL_NAMES)).toEqual([
      'corral:getOrCreate',
      'corral:getOrCreateMulti',
      'corral:get',
      'corral:getMulti',
      'corral:set',
      'corral:setMulti',
      'corral:delete',
      'corral:deleteMulti',
      'corral:invalidate',
      'corral:invalidateTags',
    ])
    for (const channel of Object.values(tracingChannels)) expect(channel.hasSubscribers).toBe(false)
  })

  it('getOrCreate: start and end around the call, asyncStart and asyncEnd with the value, one message', async () => {
    const region = setup()
    const seen = record('corral:getOrCreate')
    expect(tracingChannels.getOrCreate.hasSubscribers).toBe(true)
    expect(await region.getOrCreate('user:1', () => ({ id: 1 }))).toEqual({ id: 1 })
    const message = { operation: 'getOrCreate', region: 'users', backend: 'memory', key: 'user:1' }
    const answered = { ...message, outcome: 'miss', tier: undefined, created: true, result: { id: 1 } }
    expect(seen).toEqual([
      ['start', message],
      ['end', message],
      ['asyncStart', answered],
      ['asyncEnd', answered],
    ])
    seen.length = 0
    expect(await region.getOrCreateResult('user:1', () => ({ id: 0 }))).toMatchObject({ value: { id: 1 } })
    expect(seen.find(([event]) => event === 'asyncEnd')![1]).toMatchObject({ outcome: 'hit', created: false })
  })

  it('a failing call publishes error with what it threw', async () => {
    const region = setup()
    const seen = record('corral:getOrCreate')
    const failure = new Error('database down')
    await expect(
      region.getOrCreate('user:2', () => {
        throw failure
      }),
    ).rejects.toBe(failure)
    expect(seen.map(([event]) => event)).toEqual(['start', 'end', 'error', 'asyncStart', 'asyncEnd'])
    expect(seen.find(([event]) => event === 'error')![1].error).toBe(failure)
  })

  it('every operation publishes on its own channel with its key, keys, tags or kind', async () => {
    const region = setup()
    const seen = Object.fromEntries(
      Object.entries(TRACING_CHANNEL_NAMES).map(([operation, name]) => [operation, record(name)]),
    )
    const start = (operation: string) => {
      const {
        operation: named,
        region: regionName,
        backend,
        ...fields
      } = seen[operation]!.find(([event]) => event === 'start')![1]
      expect([named, regionName, backend]).toEqual([operation, 'users', 'memory'])
      return fields
    }
    await region.set('a', 1)
    await region.setMulti({ b: 2, c: 3 })
    await region.get('a')
    await region.getMulti(['a', 'b'])
    await region.getOrCreateMulti(['d', 'e'], (...keys) => keys)
    await region.delete('a')
    await region.deleteMulti(['b', 'c'])
    await region.invalidate({ hard: false })
    await region.invalidateTags('user:1')
    expect(start('set')).toEqual({ key: 'a' })
    expect(start('setMulti')).toEqual({ keys: ['b', 'c'] })
    expect(start('get')).toEqual({ key: 'a' })
    expect(start('getMulti')).toEqual({ keys: ['a', 'b'] })
    expect(start('getOrCreateMulti')).toEqual({ keys: ['d', 'e'] })
    expect(start('delete')).toEqual({ key: 'a' })
    expect(start('deleteMulti')).toEqual({ keys: ['b', 'c'] })
    expect(start('invalidate')).toEqual({ hard: false })
    expect(start('invalidateTags')).toEqual({ tags: ['user:1'], hard: true })
    expect(seen.get!.find(([event]) => event === 'asyncEnd')![1].result).toBe(1)
    expect(seen.getOrCreate).toEqual([])
  })

  it("binds an APM's store for the call: the creator runs inside it (start.bindStore, as APM tools do)", async () => {
    const region = setup()
    const store = new AsyncLocalStorage<{ call: string }>()
    const channel = diagnosticsChannel.tracingChannel<unknown, RegionOperationMessage>('corral:getOrCreate')
    channel.start.bindStore(store, (message) => ({ call: `${message.region}/${message.key}` }))
    unsubscribes.push(() => channel.start.unbindStore(store))
    let seenByCreator: string | undefined
    await region.getOrCreate('user:3', async () => {
      await new Promise((resolve) => setImmediate(resolve))
      seenByCreator = store.getStore()?.call
      return 3
    })
    expect(seenByCreator).toBe('users/user:3')
  })

  it('costs nothing to unsubscribed operations: nothing is published once everyone left', async () => {
    const region = setup()
    const seen = record('corral:get')
    unsubscribes.pop()!()
    expect(tracingChannels.get.hasSubscribers).toBe(false)
    await region.get('a')
    expect(seen).toEqual([])
  })
})
