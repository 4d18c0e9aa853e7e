/** Helpers for the exporter's tests (not compiled into dist). */
import { RegionRegistry, type CacheRegion } from '@corral/core'
import { createExporter } from '../app.js'
import type { ExporterLogger, ExporterOptions } from '../options.js'

export interface LogEntry {
  level: 'info' | 'warn' | 'error'
  obj: Record<string, unknown>
  msg: string
}

/** A pino-style logger that keeps what it is given. */
export function memoryLogger(): ExporterLogger & { entries: LogEntry[] } {
  const entries: LogEntry[] = []
  return {
    entries,
    info: (obj, msg) => entries.push({ level: 'info', obj, msg }),
    warn: (obj, msg) => entries.push({ level: 'warn', obj, msg }),
    error: (obj, msg) => entries.push({ level: 'error', obj, msg }),
  }
}

export interface Fixture {
  registry: RegionRegistry
  users: CacheRegion
  /** no expiration time: soft invalidation is refused */
  eternal: CacheRegion
  logger: ReturnType<typeof memoryLogger>
  app: ReturnType<typeof createExporter>
}

/** A registry of its own (own prom-client Registry) with two memory regions, and an exporter over it. */
export function fixture(options: ExporterOptions = {}): Fixture {
  const registry = new RegionRegistry()
  const users = registry.createRegion({ name: 'users' }).configure('memory', { expirationTime: 60 })
  const eternal = registry.createRegion({ name: 'eternal' }).configure('memory')
  const logger = memoryLogger()
  const app = createExporter({ registry, logger, dashboard: false, adminToken: '', ...options })
  return { registry, users, eternal, logger, app }
}

export const JSON_HEADERS = { 'content-type': 'application/json' }

/** A POST with a JSON body (a string is sent as is). */
export function postJson(body: unknown, headers: Record<string, string> = {}): RequestInit {
  return {
    method: 'POST',
    headers: { ...JSON_HEADERS, ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  }
}

/** Reads an event stream frame by frame (a frame ends with a blank line). */
export function sseReader(response: Response) {
  if (response.body === null) throw new Error('no body')
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
  let buffer = ''
  async function frame(timeoutMs = 2000): Promise<string> {
    for (;;) {
      const end = buffer.indexOf('\n\n')
      if (end >= 0) {
        const next = buffer.slice(0, end)
        buffer = buffer.slice(end + 2)
        return next
      }
      let timer: NodeJS.Timeout | undefined
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no SSE frame within ${timeoutMs} ms; buffered: ${buffer}`)),
          timeoutMs,
        )
      })
      try {
        const { value, done } = await Promise.race([reader.read(), timeout])
        if (done) throw new Error(`the stream ended; buffered: ${JSON.stringify(buffer)}`)
        buffer += value
      } finally {
        clearTimeout(timer)
      }
    }
  }
  return {
    frame,
    async frames(n: number, timeoutMs?: number): Promise<string[]> {
      const out: string[] = []
      for (let i = 0; i < n; i++) out.push(await frame(timeoutMs))
      return out
    },
    /** Reads until the stream ends; returns the rest. */
    async rest(timeoutMs = 2000): Promise<string> {
      const deadline = Date.now() + timeoutMs
      for (;;) {
        if (Date.now() > deadline) throw new Error('the stream did not end')
        const { value, done } = await reader.read()
        if (done) return buffer
        buffer += value
      }
    },
    cancel: () => reader.cancel(),
  }
}

/** Polls `check` until it returns true (default 2 s). */
export async function until(check: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}
