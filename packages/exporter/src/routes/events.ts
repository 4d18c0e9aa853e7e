/**
 * `GET /api/events`: the registry's region events as Server-Sent Events.
 *
 * Frames: `event: <name>` / `data: <payload as JSON>` / `id: <n>` (a per-connection counter, which skips the ids of
 * dropped events); `: connected` first, and a `: ping` comment after `heartbeatMs` without events. Error objects in
 * payloads become `{ name, message, code? }` (never a stack).
 *
 * Each client has a bounded buffer: when it reads too slowly the oldest buffered events are dropped and, before the
 * next events it does receive, it gets `event: dropped` / `data: {"dropped":n}`. The exporter subscribes to the
 * registry once per event name, while at least one connected client wants it, and unsubscribes when the last such
 * client goes away, so an idle exporter costs the cache nothing.
 *
 * What a watched cache pays per event: one `SharedEvent` handed to each client's ring (no copy, no serialization);
 * the payload is serialized once, by the first client that writes it. A client's writer wakes on the first event of
 * a burst and writes one turn of the event loop later, so a burst goes out in one write instead of one per event.
 *
 * Query: `events=regenerate,coalesced` (or `all`) picks event names; by default every event except `hit`, which fires
 * on every cache hit. `regions=users,products` keeps only those regions' events.
 */
import { REGION_EVENT_NAMES, type RegionEventName, type RegionRegistry } from '@corral/core'
import { Hono } from 'hono'
import { streamSSE } from 'hono/streaming'
import type { ExporterMetrics } from '../exporter-metrics.js'
import { httpError, type ExporterEnv } from '../http.js'

export const DEFAULT_EVENTS: readonly RegionEventName[] = REGION_EVENT_NAMES.filter((name) => name !== 'hit')
export const DEFAULT_HEARTBEAT_MS = 15_000
export const DEFAULT_BUFFER_SIZE = 1000
export const DEFAULT_MAX_CLIENTS = 100
/** Frames written to the socket at once; the buffer proper holds the rest. */
const MAX_BATCH = 512

/** One turn of the event loop: the events of a burst (a busy cache emits thousands per turn) gather first. */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve))

type Payload = { region: string } & Record<string, unknown>

/** `{ name, message, code? }` of a thrown value; stacks and causes stay on the server. */
export function serializeError(error: unknown): { name: string; message: string; code?: string | number } {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code
    return typeof code === 'string' || typeof code === 'number'
      ? { name: error.name, message: error.message, code }
      : { name: error.name, message: error.message }
  }
  let message: string
  try {
    message = String(error)
  } catch {
    message = 'unknown error'
  }
  return { name: 'Error', message }
}

/** The JSON of an event's `data:` line. */
function eventData(payload: Payload): string {
  return JSON.stringify('error' in payload ? { ...payload, error: serializeError(payload.error) } : payload)
}

const frame = (id: number, name: string, data: string) => `event: ${name}\ndata: ${data}\nid: ${id}\n\n`

/** One SSE frame of a region event. */
export function eventFrame(id: number, name: string, payload: Payload): string {
  return frame(id, name, eventData(payload))
}

export const droppedFrame = (dropped: number) => `event: dropped\ndata: ${JSON.stringify({ dropped })}\n\n`

/**
 * One region event as every client shares it: its payload is serialized once, by the first client that writes it,
 * and reused by all the others (a hit watched by 100 streams is one JSON.stringify, not 100).
 */
export class SharedEvent {
  #data: string | null | undefined

  constructor(
    readonly name: RegionEventName,
    readonly payload: Payload,
  ) {}

  /** The `data:` line's JSON, or null when the payload cannot be serialized (the event is skipped). */
  get data(): string | null {
    if (this.#data === undefined) {
      try {
        this.#data = eventData(this.payload)
      } catch {
        this.#data = null
      }
    }
    return this.#data
  }
}

/** One connected client: its filters, its bounded buffer (a ring of shared events), and the wake-up of its writer. */
export class EventClient {
  private readonly ring: Array<SharedEvent | undefined>
  private head = 0
  private size = 0
  /** the id the next event gets; the buffered events hold the ids just below it, in order */
  private nextId = 1
  private dropped = 0
  private wake: ((reason: 'event' | 'closed') => void) | undefined
  closed = false

  constructor(
    readonly events: ReadonlySet<RegionEventName>,
    readonly regions: ReadonlySet<string> | undefined,
    readonly capacity: number,
    private readonly onDrop: (count: number) => void = () => {},
  ) {
    this.ring = new Array<SharedEvent | undefined>(capacity)
  }

  /** Buffers an event for this client (if its filters want it), dropping the oldest one when full. */
  offer(event: SharedEvent): void {
    if (this.closed || !this.events.has(event.name)) return
    if (this.regions !== undefined && !this.regions.has(event.payload.region)) return
    this.nextId++
    if (this.size === this.capacity) {
      // The oldest goes; its id is skipped, so the gap shows in the ids too.
      this.ring[this.head] = undefined
      this.head = (this.head + 1) % this.capacity
      this.size--
      this.dropped++
      this.onDrop(1)
    }
    this.ring[(this.head + this.size) % this.capacity] = event
    this.size++
    this.signal('event')
  }

  /** The next frames to write (a dropped notice first if events were lost), or '' when nothing is buffered. */
  take(max = MAX_BATCH): string {
    let out = ''
    if (this.dropped > 0) {
      out += droppedFrame(this.dropped)
      this.dropped = 0
    }
    for (let n = 0; n < max && this.size > 0; n++) {
      const id = this.nextId - this.size
      const event = this.ring[this.head]! // size > 0: the slot holds an event
      this.ring[this.head] = undefined
      this.head = (this.head + 1) % this.capacity
      this.size--
      // a payload that cannot be serialized is skipped, not fatal to the stream
      const data = event.data
      if (data !== null) out += frame(id, event.name, data)
    }
    return out
  }

  get buffered(): number {
    return this.size
  }

  /** Resolves on the next event, on close, or after `ms` ('timeout'). */
  wait(ms: number): Promise<'event' | 'closed' | 'timeout'> {
    if (this.closed) return Promise.resolve('closed')
    if (this.size > 0 || this.dropped > 0) return Promise.resolve('event')
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wake = undefined
        resolve('timeout')
      }, ms)
      this.wake = (reason) => {
        clearTimeout(timer)
        this.wake = undefined
        resolve(reason)
      }
    })
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    this.ring.fill(undefined)
    this.size = 0
    this.signal('closed')
  }

  private signal(reason: 'event' | 'closed'): void {
    this.wake?.(reason)
  }
}

/** Subscribes to the registry's events once per event name that at least one client wants. */
export class EventFanout {
  private readonly clients = new Set<EventClient>()
  private readonly attached = new Map<RegionEventName, (payload: Payload) => void>()

  constructor(private readonly registry: RegionRegistry) {}

  get size(): number {
    return this.clients.size
  }

  /** Event names the registry is currently subscribed to on the clients' behalf. */
  get subscribedEvents(): RegionEventName[] {
    return [...this.attached.keys()]
  }

  add(client: EventClient): void {
    this.clients.add(client)
    this.sync()
  }

  remove(client: EventClient): void {
    this.clients.delete(client)
    this.sync()
  }

  /** Closes every client's stream (exporter shutdown). */
  closeAll(): void {
    for (const client of [...this.clients]) client.close()
  }

  private sync(): void {
    const wanted = new Set<RegionEventName>()
    for (const client of this.clients) for (const name of client.events) wanted.add(name)
    for (const name of wanted) {
      if (this.attached.has(name)) continue
      const listener = (payload: Payload) => {
        const event = new SharedEvent(name, payload)
        for (const client of this.clients) client.offer(event)
      }
      this.attached.set(name, listener)
      this.registry.on(name, listener as never)
    }
    for (const [name, listener] of this.attached) {
      if (wanted.has(name)) continue
      this.registry.off(name, listener as never)
      this.attached.delete(name)
    }
  }
}

function parseList(values: string[] | undefined): string[] | undefined {
  if (values === undefined || values.length === 0) return undefined
  return values
    .flatMap((value) => value.split(','))
    .map((value) => value.trim())
    .filter((value) => value !== '')
}

export function parseEventFilter(values: string[] | undefined): Set<RegionEventName> {
  const names = parseList(values)
  if (names === undefined) return new Set(DEFAULT_EVENTS)
  if (names.length === 1 && names[0] === 'all') return new Set(REGION_EVENT_NAMES)
  const unknown = names.filter((name) => !REGION_EVENT_NAMES.includes(name as RegionEventName))
  if (names.length === 0 || unknown.length > 0) {
    throw httpError(
      400,
      `events must be "all" or a comma-separated list of ${REGION_EVENT_NAMES.join(', ')}${
        unknown.length > 0 ? `; unknown: ${unknown.join(', ').slice(0, 200)}` : ''
      }`,
    )
  }
  return new Set(names as RegionEventName[])
}

export interface EventRoutesOptions {
  fanout: EventFanout
  metrics: ExporterMetrics
  heartbeatMs: number
  bufferSize: number
  maxClients: number
}

/** Mounted under `/api`. */
export function eventRoutes(options: EventRoutesOptions): Hono<ExporterEnv> {
  const { fanout, metrics, heartbeatMs, bufferSize, maxClients } = options
  const app = new Hono<ExporterEnv>()

  app.get('/events', (c) => {
    const events = parseEventFilter(c.req.queries('events'))
    const regionNames = parseList(c.req.queries('regions'))
    // Hono answers HEAD with the GET handler and drops the body unread: no client for it
    if (c.req.method === 'HEAD') {
      c.header('Content-Type', 'text/event-stream')
      c.header('Cache-Control', 'no-cache')
      return c.body(null, 200)
    }
    if (fanout.size >= maxClients) {
      c.header('Retry-After', '10')
      throw httpError(503, `too many event-stream clients (${maxClients}); try again later`)
    }
    const client = new EventClient(
      events,
      regionNames === undefined ? undefined : new Set(regionNames),
      bufferSize,
      (count) => metrics.sseDropped.inc(count),
    )
    // Subscribed before the response is returned: no event between now and the first read is missed.
    fanout.add(client)
    metrics.sseClients.set(fanout.size)
    c.header('X-Accel-Buffering', 'no')
    const signal = c.req.raw.signal
    const onAbort = () => client.close()
    signal?.addEventListener('abort', onAbort)
    return streamSSE(c, async (stream) => {
      stream.onAbort(onAbort)
      try {
        await stream.write(': connected\n\n')
        while (!client.closed && !stream.aborted) {
          const frames = client.take()
          if (frames !== '') {
            await stream.write(frames)
            continue
          }
          const woken = await client.wait(heartbeatMs)
          if (woken === 'timeout') await stream.write(': ping\n\n')
          // Written one turn later, the events of a burst go out in one write instead of one write each.
          else if (woken === 'event') await nextTurn()
        }
      } finally {
        client.close()
        signal?.removeEventListener('abort', onAbort)
        fanout.remove(client)
        metrics.sseClients.set(fanout.size)
      }
    })
  })

  return app
}
