/**
 * The exporter's HTTP API: a small fetch wrapper and the Server-Sent Events client.
 *
 * URLs are relative ("api/regions", not "/api/regions"): the exporter serves the dashboard at `/`, where both
 * resolve alike, and a reverse proxy that mounts the exporter under a prefix keeps working.
 */
import type {
  FleetHotKeysJson,
  FleetJson,
  FleetStampedesJson,
  HistoryJson,
  HotKeysJson,
  InvalidateBody,
  InvalidateJson,
  InvalidateTagsBody,
  InvalidateTagsJson,
  RegionsJson,
  StampedesJson,
} from '@corral/exporter/api'
import { type SseMessage, SseParser } from './sse'

export class ApiError extends Error {
  constructor(
    /** The HTTP status, or 0 when the exporter could not be reached. */
    readonly status: number,
    message: string,
  ) {
    super(message)
    this.name = 'ApiError'
  }
}

export const isUnauthorized = (error: unknown): boolean => error instanceof ApiError && error.status === 401

export const isAbort = (error: unknown): boolean => error instanceof DOMException && error.name === 'AbortError'

export function errorMessage(error: unknown): string {
  if (error instanceof ApiError) return error.status ? `HTTP ${error.status}: ${error.message}` : error.message
  return error instanceof Error ? error.message : String(error)
}

function headers(token: string | null, accept: string): Record<string, string> {
  const out: Record<string, string> = { Accept: accept }
  if (token) out['Authorization'] = `Bearer ${token}`
  return out
}

async function send(path: string, init: RequestInit): Promise<Response> {
  try {
    return await fetch(path, { cache: 'no-store', credentials: 'same-origin', ...init })
  } catch (error) {
    if (isAbort(error)) throw error
    throw new ApiError(0, `Cannot reach the exporter (${error instanceof Error ? error.message : String(error)})`)
  }
}

/** The `{ error }` of a JSON error answer, else the start of the body, else the status text. */
async function describeFailure(response: Response): Promise<string> {
  const text = await response.text().catch(() => '')
  try {
    const body: unknown = JSON.parse(text)
    if (body && typeof body === 'object' && 'error' in body) {
      const error = (body as { error: unknown }).error
      if (typeof error === 'string') return error
      if (error && typeof error === 'object' && 'message' in error) return String(error.message)
    }
  } catch {
    // Not JSON: fall through.
  }
  const trimmed = text.trim()
  if (trimmed && !trimmed.startsWith('<')) return trimmed.slice(0, 200)
  return response.statusText || 'request failed'
}

export async function requestJson<T>(
  path: string,
  options: { token: string | null; method?: 'GET' | 'POST'; body?: unknown; signal?: AbortSignal },
): Promise<T> {
  const init: RequestInit = { method: options.method ?? 'GET', headers: headers(options.token, 'application/json') }
  if (options.signal) init.signal = options.signal
  if (options.body !== undefined) {
    ;(init.headers as Record<string, string>)['Content-Type'] = 'application/json'
    init.body = JSON.stringify(options.body)
  }
  const response = await send(path, init)
  if (!response.ok) throw new ApiError(response.status, await describeFailure(response))
  try {
    return (await response.json()) as T
  } catch {
    throw new ApiError(response.status, 'the exporter answered with something that is not JSON')
  }
}

const region = (name: string) => `api/regions/${encodeURIComponent(name)}`

export const api = {
  regions: (token: string | null) => requestJson<RegionsJson>('api/regions', { token }),
  hotKeys: (name: string, limit: number, token: string | null) =>
    requestJson<HotKeysJson>(`${region(name)}/hot-keys?limit=${limit}`, { token }),
  stampedes: (limit: number, token: string | null) =>
    requestJson<StampedesJson>(`api/stampedes?limit=${limit}`, { token }),
  history: (fleet: boolean, range: string, since: number | undefined, token: string | null) =>
    requestJson<HistoryJson>(
      `api/${fleet ? 'fleet/' : ''}history?range=${encodeURIComponent(range)}${since === undefined ? '' : `&since=${since}`}`,
      { token },
    ),
  fleet: (token: string | null) => requestJson<FleetJson>('api/fleet', { token }),
  fleetHotKeys: (name: string, limit: number, token: string | null) =>
    requestJson<FleetHotKeysJson>(`api/fleet/regions/${encodeURIComponent(name)}/hot-keys?limit=${limit}`, { token }),
  fleetStampedes: (limit: number, token: string | null) =>
    requestJson<FleetStampedesJson>(`api/fleet/stampedes?limit=${limit}`, { token }),
  invalidate: (name: string, hard: boolean, token: string | null) =>
    requestJson<InvalidateJson>(`${region(name)}/invalidate`, {
      token,
      method: 'POST',
      body: { hard } satisfies InvalidateBody,
    }),
  invalidateTags: (name: string, tags: readonly string[], hard: boolean, token: string | null) =>
    requestJson<InvalidateTagsJson>(`${region(name)}/invalidate-tags`, {
      token,
      method: 'POST',
      body: { tags, hard } satisfies InvalidateTagsBody,
    }),
}

/** The event stream failed in a way that says something about retrying. */
export class StreamError extends Error {
  constructor(
    readonly status: number,
    /** The server does not offer the stream (404, 405, 501, or not `text/event-stream`): retry rarely. */
    readonly unsupported: boolean,
    message: string,
  ) {
    super(message)
    this.name = 'StreamError'
  }
}

export interface StreamHandlers {
  /** The server accepted the stream. */
  onOpen(): void
  /** Any bytes arrived (events or heartbeat comments). */
  onActivity(): void
  onMessage(message: SseMessage): void
}

/**
 * Reads `GET api/events` with fetch, so that the bearer token can be sent (EventSource cannot send headers).
 * Resolves when the server ends the stream; rejects with ApiError(401), StreamError, or the AbortError of
 * `signal`.
 */
export async function streamEvents(token: string | null, signal: AbortSignal, handlers: StreamHandlers): Promise<void> {
  const response = await send('api/events', { headers: headers(token, 'text/event-stream'), signal })
  if (response.status === 401) throw new ApiError(401, await describeFailure(response))
  if (!response.ok) {
    const unsupported = [404, 405, 501].includes(response.status)
    throw new StreamError(response.status, unsupported, `HTTP ${response.status}: ${await describeFailure(response)}`)
  }
  const type = response.headers.get('content-type') ?? ''
  if (!type.includes('text/event-stream') || !response.body) {
    await response.body?.cancel().catch(() => undefined)
    throw new StreamError(
      response.status,
      true,
      `the exporter did not answer with an event stream (${type || 'no type'})`,
    )
  }
  handlers.onOpen()
  const parser = new SseParser()
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
  try {
    for (;;) {
      const { value, done } = await reader.read()
      if (done) return
      handlers.onActivity()
      for (const message of parser.push(value)) handlers.onMessage(message)
    }
  } finally {
    reader.cancel().catch(() => undefined)
  }
}
