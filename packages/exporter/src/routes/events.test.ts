import { CorralError } from '@corral/core'
import { describe, expect, it, vi } from 'vitest'
import { fixture, sseReader, until } from '../test-support/helpers.js'
import { RegionRegistry } from '@corral/core'
import {
  droppedFrame,
  EventClient,
  EventFanout,
  eventFrame,
  parseEventFilter,
  serializeError,
  SharedEvent,
} from './events.js'

class CreatorError extends CorralError {
  static override readonly code = 'E_CREATOR'
}

describe('GET /api/events', () => {
  it('streams region events as SSE frames', async () => {
    const f = fixture()
    const res = await f.app.request('/api/events')
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('text/event-stream')
    expect(res.headers.get('cache-control')).toBe('no-cache')
    expect(res.headers.get('x-accel-buffering')).toBe('no')
    const sse = sseReader(res)
    expect(await sse.frame()).toBe(': connected')

    await f.users.delete('user:1')
    expect(await sse.frame()).toBe(
      'event: invalidate\ndata: {"region":"users","hard":true,"scope":"key","key":"user:1"}\nid: 1',
    )
    await f.users.invalidate({ hard: false })
    expect(await sse.frame()).toBe('event: invalidate\ndata: {"region":"users","hard":false,"scope":"region"}\nid: 2')
    await f.users.get('absent')
    expect(await sse.frame()).toBe('event: miss\ndata: {"region":"users","key":"absent","reason":"absent"}\nid: 3')
    await sse.cancel()
  })

  it('reports the admin API writes as events', async () => {
    const f = fixture()
    const sse = sseReader(await f.app.request('/api/events?events=invalidate'))
    await sse.frame()
    await f.app.request('/api/regions/users/invalidate', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"hard":true}',
    })
    expect(await sse.frame()).toBe('event: invalidate\ndata: {"region":"users","hard":true,"scope":"region"}\nid: 1')
    await f.app.request('/api/regions/users/keys/a%2Fb', { method: 'DELETE' })
    expect(await sse.frame()).toBe(
      'event: invalidate\ndata: {"region":"users","hard":true,"scope":"key","key":"a/b"}\nid: 2',
    )
    await sse.cancel()
  })

  it('leaves out hit events unless asked for them', async () => {
    const f = fixture()
    await f.users.set('k', 'v')
    const quiet = sseReader(await f.app.request('/api/events'))
    const hits = sseReader(await f.app.request('/api/events?events=hit,miss'))
    await quiet.frame()
    await hits.frame()
    await f.users.get('k')
    await f.users.get('other')
    expect(await hits.frames(2)).toEqual([
      'event: hit\ndata: {"region":"users","key":"k","tier":"l1"}\nid: 1',
      'event: miss\ndata: {"region":"users","key":"other","reason":"absent"}\nid: 2',
    ])
    expect(await quiet.frame()).toBe('event: miss\ndata: {"region":"users","key":"other","reason":"absent"}\nid: 1')
    await quiet.cancel()
    await hits.cancel()
  })

  it('filters by event names (or all) and by regions', async () => {
    const f = fixture()
    const sse = sseReader(await f.app.request('/api/events?events=all&regions=eternal'))
    await sse.frame()
    await f.users.set('k', 'v')
    await f.users.get('k')
    await f.eternal.set('e', 1)
    await f.eternal.get('e')
    expect(await sse.frame()).toBe('event: hit\ndata: {"region":"eternal","key":"e","tier":"l1"}\nid: 1')
    await sse.cancel()
  })

  it('answers 400 to unknown event names', async () => {
    const f = fixture()
    for (const query of ['events=bogus', 'events=hit,nope', 'events=', 'events=,']) {
      const res = await f.app.request(`/api/events?${query}`)
      expect(res.status, query).toBe(400)
      expect(((await res.json()) as { error: string }).error).toMatch(/^events must be "all" or a comma-separated list/)
    }
  })

  it('serializes errors as { name, message, code } without stacks', async () => {
    const f = fixture()
    const sse = sseReader(await f.app.request('/api/events?events=regenerate'))
    await sse.frame()
    await expect(
      f.users.getOrCreate('broken', () => {
        throw new CreatorError('the database is down')
      }),
    ).rejects.toThrow('the database is down')
    const frame = await sse.frame()
    const [event, data, id] = frame.split('\n')
    expect(event).toBe('event: regenerate')
    expect(id).toBe('id: 1')
    expect(JSON.parse(data?.slice('data: '.length) ?? '')).toEqual({
      region: 'users',
      keys: ['broken'],
      duration: expect.any(Number),
      outcome: 'error',
      error: { name: 'CreatorError', message: 'the database is down', code: 'E_CREATOR' },
    })
    expect(frame).not.toContain('at ')
    await sse.cancel()
  })

  it('sends a heartbeat comment when idle', async () => {
    const f = fixture({ events: { heartbeatMs: 20 } })
    const sse = sseReader(await f.app.request('/api/events'))
    expect(await sse.frames(3)).toEqual([': connected', ': ping', ': ping'])
    await f.users.delete('k')
    expect(await sse.frame()).toMatch(/^event: invalidate\n/)
    await sse.cancel()
  })

  it('drops the oldest events of a slow client and tells it how many', async () => {
    const f = fixture({ events: { bufferSize: 3 } })
    const res = await f.app.request('/api/events?events=invalidate')
    // the client reads nothing while 50 events happen
    await Promise.all(Array.from({ length: 50 }, (_, i) => f.users.delete(`k${i}`)))
    const sse = sseReader(res)
    const frames = [await sse.frame()]
    let dropped = 0
    let received = 0
    const ids: number[] = []
    while (dropped + received < 50) {
      const frame = await sse.frame()
      frames.push(frame)
      const notice = /^event: dropped\ndata: \{"dropped":(\d+)\}$/.exec(frame)
      if (notice) {
        dropped += Number(notice[1])
        continue
      }
      expect(frame).toMatch(
        /^event: invalidate\ndata: \{"region":"users","hard":true,"scope":"key","key":"k\d+"\}\nid: \d+$/,
      )
      ids.push(Number(/id: (\d+)$/.exec(frame)?.[1]))
      received++
    }
    expect(frames[0]).toBe(': connected')
    expect(dropped).toBeGreaterThan(0)
    expect(received).toBeLessThanOrEqual(3 + 64 + 1)
    // ids keep counting through the gap: the last event always arrives, as id 50
    expect(ids).toEqual([...ids].sort((a, b) => a - b))
    expect(ids.at(-1)).toBe(50)
    const metrics = await (await f.app.request('/metrics')).text()
    expect(metrics).toContain(`corral_exporter_events_dropped_total ${dropped}`)
    await sse.cancel()
  })

  it('removes its registry listeners when the client goes away', async () => {
    const f = fixture()
    const on = vi.spyOn(f.registry, 'on')
    const off = vi.spyOn(f.registry, 'off')
    const first = sseReader(await f.app.request('/api/events'))
    const second = sseReader(await f.app.request('/api/events?events=all'))
    await first.frame()
    await second.frame()
    // one registry listener per event name, shared by the clients
    expect(on.mock.calls.map(([name]) => name).sort()).toEqual(
      [
        'backendError',
        'circuit',
        'coalesced',
        'failSafe',
        'hit',
        'invalidate',
        'lockWait',
        'miss',
        'regenerate',
        'stale',
        'timeout',
      ].sort(),
    )
    expect(await (await f.app.request('/metrics')).text()).toContain('corral_exporter_event_clients 2')

    await second.cancel()
    await until(() => off.mock.calls.length === 1)
    expect(off.mock.calls[0]?.[0]).toBe('hit')
    await first.cancel()
    await until(() => off.mock.calls.length === on.mock.calls.length)
    // every listener added was removed, the very same function
    const added = on.mock.calls.map(([name, listener]) => [name, listener])
    const removed = off.mock.calls.map(([name, listener]) => [name, listener])
    expect(removed).toHaveLength(added.length)
    for (const pair of added) expect(removed).toContainEqual(pair)
    expect(Object.values(f.registry.hub.listening).some(Boolean)).toBe(false)
    expect(await (await f.app.request('/metrics')).text()).toContain('corral_exporter_event_clients 0')
    // events after the clients left go nowhere and break nothing
    await f.users.delete('k')
  })

  it('answers HEAD without opening a stream', async () => {
    const f = fixture()
    const on = vi.spyOn(f.registry, 'on')
    const res = await f.app.request('/api/events', { method: 'HEAD' })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('text/event-stream')
    expect(on).not.toHaveBeenCalled()
    expect(await (await f.app.request('/metrics')).text()).toContain('corral_exporter_event_clients 0')
  })

  it('answers 503 beyond maxClients', async () => {
    const f = fixture({ events: { maxClients: 1 } })
    const sse = sseReader(await f.app.request('/api/events'))
    await sse.frame()
    const res = await f.app.request('/api/events')
    expect(res.status).toBe(503)
    expect(res.headers.get('retry-after')).toBe('10')
    expect(await res.json()).toEqual({ error: 'too many event-stream clients (1); try again later' })
    await sse.cancel()
    await until(() => !Object.values(f.registry.hub.listening).some(Boolean))
    const again = await f.app.request('/api/events')
    expect(again.status).toBe(200)
    await again.body?.cancel()
  })
})

describe('EventClient', () => {
  it('keeps the newest events when full and announces the dropped ones first', () => {
    const client = new EventClient(new Set(['invalidate']), undefined, 3)
    for (let i = 1; i <= 10; i++)
      client.offer(new SharedEvent('invalidate', { region: 'r', hard: true, scope: 'key', key: `k${i}` }))
    expect(client.buffered).toBe(3)
    expect(client.take()).toBe(
      'event: dropped\ndata: {"dropped":7}\n\n' +
        'event: invalidate\ndata: {"region":"r","hard":true,"scope":"key","key":"k8"}\nid: 8\n\n' +
        'event: invalidate\ndata: {"region":"r","hard":true,"scope":"key","key":"k9"}\nid: 9\n\n' +
        'event: invalidate\ndata: {"region":"r","hard":true,"scope":"key","key":"k10"}\nid: 10\n\n',
    )
    expect(client.take()).toBe('')
  })

  it('takes at most a batch at a time', () => {
    const client = new EventClient(new Set(['miss']), undefined, 10)
    for (let i = 0; i < 5; i++) client.offer(new SharedEvent('miss', { region: 'r', key: `k${i}`, reason: 'absent' }))
    expect(client.take(2).match(/^event: /gm)).toHaveLength(2)
    expect(client.buffered).toBe(3)
  })

  it('ignores events it did not ask for, and everything once closed', () => {
    const client = new EventClient(new Set(['miss']), new Set(['a']), 10)
    client.offer(new SharedEvent('hit', { region: 'a', key: 'k' }))
    client.offer(new SharedEvent('miss', { region: 'b', key: 'k', reason: 'absent' }))
    expect(client.buffered).toBe(0)
    client.close()
    client.offer(new SharedEvent('miss', { region: 'a', key: 'k', reason: 'absent' }))
    expect(client.buffered).toBe(0)
  })

  it('wakes its writer on an event, on close, or after the heartbeat delay', async () => {
    const client = new EventClient(new Set(['miss']), undefined, 10)
    const woken = client.wait(10_000)
    client.offer(new SharedEvent('miss', { region: 'a', key: 'k', reason: 'absent' }))
    expect(await woken).toBe('event')
    client.take()
    expect(await client.wait(5)).toBe('timeout')
    const closing = client.wait(10_000)
    client.close()
    expect(await closing).toBe('closed')
  })
})

describe('EventFanout', () => {
  it('serializes each event once, whatever the number of clients that receive it', async () => {
    const registry = new RegionRegistry()
    const region = registry.createRegion({ name: 'r' }).configure('memory', {})
    const fanout = new EventFanout(registry)
    const clients = Array.from({ length: 100 }, () => new EventClient(new Set(['miss', 'hit']), undefined, 10))
    for (const client of clients) fanout.add(client)
    const stringify = vi.spyOn(JSON, 'stringify')
    try {
      for (let i = 0; i < 5; i++) await region.get(`absent-${i}`)
      const written = clients.map((client) => client.take())
      expect(stringify).toHaveBeenCalledTimes(5)
      // and every client got every event, with its own ids
      for (const frames of written) expect(frames).toBe(written[0])
      expect(written[0]!.match(/^event: miss$/gm)).toHaveLength(5)
    } finally {
      stringify.mockRestore()
      for (const client of clients) fanout.remove(client)
    }
  })

  it('does not serialize events no client wants, and skips a payload that cannot be serialized', () => {
    const event = new SharedEvent('hit', { region: 'r', key: 'k', loop: {} })
    ;(event.payload.loop as Record<string, unknown>).self = event.payload.loop
    const client = new EventClient(new Set(['hit']), undefined, 10)
    client.offer(event)
    client.offer(new SharedEvent('hit', { region: 'r', key: 'fine' }))
    expect(client.take()).toBe('event: hit\ndata: {"region":"r","key":"fine"}\nid: 2\n\n')
    const stringify = vi.spyOn(JSON, 'stringify')
    try {
      new EventClient(new Set(['miss']), undefined, 10).offer(new SharedEvent('hit', { region: 'r', key: 'k' }))
      expect(stringify).not.toHaveBeenCalled()
    } finally {
      stringify.mockRestore()
    }
  })
})

describe('frames', () => {
  it('formats events and notices', () => {
    expect(eventFrame(7, 'hit', { region: 'r', key: 'line\nbreak' })).toBe(
      'event: hit\ndata: {"region":"r","key":"line\\nbreak"}\nid: 7\n\n',
    )
    expect(droppedFrame(3)).toBe('event: dropped\ndata: {"dropped":3}\n\n')
  })

  it('serializes thrown values of any kind', () => {
    expect(serializeError(new TypeError('bad'))).toEqual({ name: 'TypeError', message: 'bad' })
    expect(serializeError(Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }))).toEqual({
      name: 'Error',
      message: 'refused',
      code: 'ECONNREFUSED',
    })
    expect(serializeError('plain string')).toEqual({ name: 'Error', message: 'plain string' })
    expect(serializeError(Object.create(null))).toEqual({ name: 'Error', message: 'unknown error' })
  })

  it('parses event filters', () => {
    expect([...parseEventFilter(undefined)]).not.toContain('hit')
    expect([...parseEventFilter(['all'])]).toContain('hit')
    expect([...parseEventFilter(['regenerate, coalesced'])]).toEqual(['regenerate', 'coalesced'])
    expect([...parseEventFilter(['regenerate', 'coalesced'])]).toEqual(['regenerate', 'coalesced'])
  })
})
