/**
 * Keeps the store fresh: the event stream drives throttled refreshes of the JSON endpoints, with reconnection
 * (exponential backoff) and polling while the stream is down.
 *
 * - connecting:   first attempt in flight.
 * - live:         the stream is open; any event schedules a refresh (at most 2 per second), plus one every 5 s
 *                 so that rates fall back to zero when traffic stops.
 * - reconnecting: the stream failed; retried after 1, 2, 4 ... 30 s, and the JSON endpoints are polled every 2 s
 *                 meanwhile.
 * - polling:      the stream failed 3 times in a row, or the server does not offer it (404/405/501, not an event
 *                 stream): polling every 2 s, the stream retried with the same backoff (30 s when unsupported).
 * - unauthorized: the API answered 401; everything stops until a token is entered.
 */
import { api, errorMessage, isAbort, isUnauthorized, StreamError, streamEvents } from './api'
import { formatClock, parseInstant } from './format'
import { appendSample } from './rates'
import { backoffDelay, stateAfterFailure, throttle } from './schedule'
import type { SseMessage } from './sse'
import { describeTags } from './tags'
import {
  authProblem,
  backendErrorEvents,
  connection,
  connectionDetail,
  droppedEvents,
  eventsPerSecond,
  feedback,
  history,
  hotKeys,
  type HotKeysState,
  invalidating,
  lastUpdated,
  now,
  pendingInvalidation,
  pendingTagInvalidation,
  regions,
  regionsError,
  stampedes,
  stampedesError,
  storeToken,
  token,
  tokenFormOpen,
} from './store'
import { batch } from '@preact/signals'

export const REFRESH_MIN_INTERVAL_MS = 500
export const POLL_INTERVAL_MS = 2000
export const LIVE_REFRESH_INTERVAL_MS = 5000
/** No bytes (not even a heartbeat comment) for this long: the stream is considered dead. */
export const STREAM_IDLE_TIMEOUT_MS = 45_000
export const HISTORY_RETENTION_MS = 6 * 60_000
export const HOT_KEYS_LIMIT = 20
/** Hot keys cover a window of about a minute: one request per region every 2 s is plenty. */
export const HOT_KEYS_MIN_INTERVAL_MS = 2000
export const STAMPEDES_LIMIT = 50

/** Bumped by every start/stop: callbacks of an older generation do nothing. */
let generation = 0
let failures = 0
let stream: AbortController | null = null
let reconnectTimer: ReturnType<typeof setTimeout> | undefined
let watchdogTimer: ReturnType<typeof setTimeout> | undefined
let pollTimer: ReturnType<typeof setInterval> | undefined
let liveTimer: ReturnType<typeof setInterval> | undefined
let eventCount = 0
let hotKeysFetchedAt = -Infinity
let hotKeysFetchedFor = ''

const refresher = throttle(refresh, REFRESH_MIN_INTERVAL_MS)

async function refresh(): Promise<void> {
  const gen = generation
  const tok = token.peek()
  const [regionsResult, stampedesResult] = await Promise.allSettled([
    api.regions(tok),
    api.stampedes(STAMPEDES_LIMIT, tok),
  ])
  if (gen !== generation) return
  if (
    (regionsResult.status === 'rejected' && isUnauthorized(regionsResult.reason)) ||
    (stampedesResult.status === 'rejected' && isUnauthorized(stampedesResult.reason))
  ) {
    unauthorized()
    return
  }
  const t = Date.now()
  batch(() => {
    if (regionsResult.status === 'fulfilled') {
      const list = Array.isArray(regionsResult.value.regions) ? regionsResult.value.regions : []
      regions.value = list
      history.value = appendSample(history.peek(), t, list, { retentionMs: HISTORY_RETENTION_MS, maxSamples: 2000 })
      regionsError.value = null
      lastUpdated.value = t
    } else {
      regionsError.value = errorMessage(regionsResult.reason)
    }
    if (stampedesResult.status === 'fulfilled') {
      stampedes.value = Array.isArray(stampedesResult.value.stampedes) ? stampedesResult.value.stampedes : []
      stampedesError.value = null
    } else {
      stampedesError.value = errorMessage(stampedesResult.reason)
    }
  })
  if (regionsResult.status !== 'fulfilled') return

  const names = regionsResult.value.regions.map((r) => r.name)
  const namesKey = JSON.stringify(names)
  if (Date.now() - hotKeysFetchedAt < HOT_KEYS_MIN_INTERVAL_MS && namesKey === hotKeysFetchedFor) return
  hotKeysFetchedAt = Date.now()
  hotKeysFetchedFor = namesKey
  const results = await Promise.allSettled(names.map((name) => api.hotKeys(name, HOT_KEYS_LIMIT, tok)))
  if (gen !== generation) return
  if (results.some((r) => r.status === 'rejected' && isUnauthorized(r.reason))) {
    unauthorized()
    return
  }
  const next: Record<string, HotKeysState> = {}
  names.forEach((name, i) => {
    const result = results[i]
    if (!result) return
    next[name] = result.status === 'fulfilled' ? { data: result.value } : { error: errorMessage(result.reason) }
  })
  hotKeys.value = next
}

function clearTimers(): void {
  clearTimeout(reconnectTimer)
  clearTimeout(watchdogTimer)
  clearInterval(pollTimer)
  clearInterval(liveTimer)
  reconnectTimer = watchdogTimer = pollTimer = liveTimer = undefined
}

function stop(): void {
  generation++
  stream?.abort()
  stream = null
  clearTimers()
  refresher.cancel()
}

/** (Re)starts everything with the current token. */
export function start(): void {
  stop()
  const gen = generation
  failures = 0
  hotKeysFetchedAt = -Infinity
  batch(() => {
    connection.value = 'connecting'
    connectionDetail.value = ''
    authProblem.value = null
  })
  refresher.request()
  openStream(gen)
}

function unauthorized(): void {
  stop()
  batch(() => {
    connection.value = 'unauthorized'
    connectionDetail.value = token.peek() ? 'The exporter rejected the token' : 'The exporter requires an admin token'
    authProblem.value = token.peek() ? 'rejected' : 'required'
  })
}

function startPolling(): void {
  clearInterval(liveTimer)
  liveTimer = undefined
  if (pollTimer === undefined) pollTimer = setInterval(() => refresher.request(), POLL_INTERVAL_MS)
}

function openStream(gen: number): void {
  if (gen !== generation) return
  const controller = new AbortController()
  stream = controller
  let timedOut = false
  const armWatchdog = () => {
    clearTimeout(watchdogTimer)
    watchdogTimer = setTimeout(() => {
      timedOut = true
      controller.abort()
    }, STREAM_IDLE_TIMEOUT_MS)
  }
  armWatchdog()
  streamEvents(token.peek(), controller.signal, {
    onOpen() {
      if (gen !== generation) return
      failures = 0
      connection.value = 'live'
      connectionDetail.value = 'Receiving events from the exporter'
      clearInterval(pollTimer)
      pollTimer = undefined
      clearInterval(liveTimer)
      liveTimer = setInterval(() => refresher.request(), LIVE_REFRESH_INTERVAL_MS)
      refresher.request()
    },
    onActivity: armWatchdog,
    onMessage: (message) => {
      if (gen === generation) onEvent(message)
    },
  }).then(
    () => streamFailed(gen, controller, false, 'the exporter closed the event stream'),
    (error: unknown) => {
      if (gen !== generation) return
      if (isUnauthorized(error)) return unauthorized()
      if (isAbort(error) && !timedOut) return
      const unsupported = error instanceof StreamError && error.unsupported
      const reason = timedOut ? `no data for ${STREAM_IDLE_TIMEOUT_MS / 1000} s` : errorMessage(error)
      streamFailed(gen, controller, unsupported, reason)
    },
  )
}

function streamFailed(gen: number, controller: AbortController, unsupported: boolean, reason: string): void {
  if (gen !== generation || stream !== controller) return
  stream = null
  clearTimeout(watchdogTimer)
  failures++
  const delay = unsupported ? 30_000 : backoffDelay(failures)
  const state = stateAfterFailure(failures, unsupported)
  batch(() => {
    connection.value = state
    connectionDetail.value = `Event stream unavailable (${reason}); ${
      state === 'polling' ? 'polling every 2 s, ' : ''
    }next attempt in ${Math.round(delay / 1000)} s`
  })
  startPolling()
  refresher.request()
  reconnectTimer = setTimeout(() => openStream(gen), delay)
}

function onEvent(message: SseMessage): void {
  eventCount++
  if (message.event === 'dropped') {
    try {
      const n = (JSON.parse(message.data) as { dropped?: unknown }).dropped
      if (typeof n === 'number' && Number.isFinite(n)) droppedEvents.value += n
    } catch {
      // A malformed notice still means events were lost: refresh below.
    }
  } else if (message.event === 'backendError') {
    backendErrorEvents.value++
  }
  refresher.request()
}

/** Asks for a refresh soon (throttled). */
export function refreshSoon(): void {
  refresher.request()
}

export function submitToken(value: string, remember: boolean): void {
  storeToken(value, remember)
  tokenFormOpen.value = false
  start()
}

export function forgetToken(): void {
  storeToken(null, false)
  start()
}

/**
 * Runs an invalidation confirmed in a dialog: `invalidating` while it runs, then the success (`done`) or error
 * feedback, a refresh, and the dialog closed.
 */
async function invalidation<T>(what: string, run: () => Promise<T>, done: (answer: T) => string): Promise<void> {
  invalidating.value = true
  try {
    const answer = await run()
    feedback.value = { kind: 'success', text: done(answer) }
    refresher.request()
  } catch (error) {
    if (isUnauthorized(error)) unauthorized()
    feedback.value = {
      kind: 'error',
      text: isUnauthorized(error)
        ? `${what} failed: the exporter rejected the token (HTTP 401).`
        : `${what} failed (${errorMessage(error)}).`,
    }
  } finally {
    batch(() => {
      invalidating.value = false
      pendingInvalidation.value = null
      pendingTagInvalidation.value = null
    })
  }
}

export function invalidateRegion(name: string, hard: boolean): Promise<void> {
  const what = `${hard ? 'Hard' : 'Soft'} invalidation of “${name}”`
  return invalidation(
    what,
    () => api.invalidate(name, hard, token.peek()),
    (answer) =>
      `${what} at ${formatClock(parseInstant(answer.invalidatedAt) ?? Date.now())}: values created before then are now ${
        hard ? 'misses' : 'stale'
      }.`,
  )
}

export function invalidateTags(name: string, tags: readonly string[], hard: boolean): Promise<void> {
  const what = `${hard ? 'Hard' : 'Soft'} invalidation of ${describeTags(tags)} in “${name}”`
  return invalidation(
    what,
    () => api.invalidateTags(name, tags, hard, token.peek()),
    (answer) =>
      `${what} at ${formatClock(parseInstant(answer.invalidatedAt) ?? Date.now())}: values carrying ${
        tags.length === 1 ? 'it' : 'one of them'
      } created before then are now ${hard ? 'misses' : 'stale'}.`,
  )
}

let tickTimer: ReturnType<typeof setInterval> | undefined
let lastEventCount = 0

/** Starts the clock and the connection; call once. */
export function boot(): void {
  if (tickTimer === undefined) {
    tickTimer = setInterval(() => {
      batch(() => {
        now.value = Date.now()
        eventsPerSecond.value = eventCount - lastEventCount
      })
      lastEventCount = eventCount
    }, 1000)
  }
  start()
}
