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
import { ApiError, api, errorMessage, isAbort, isUnauthorized, StreamError, streamEvents } from './api'
import { formatClock, parseInstant } from './format'
import { appendSample, emptyHistory } from './rates'
import { mergeHistory, type RangeId } from './server-history'
import { backoffDelay, type HistoryRequest, historyRequestDue, stateAfterFailure, throttle } from './schedule'
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
  fleetAvailable,
  history,
  historyError,
  historyRange,
  incidents,
  instances,
  type Scope,
  scope,
  selfInstance,
  serverHistory,
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
import type { FleetJson, RegionJson } from '@corral/exporter/api'

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
/** The charts' server history is topped up at most this often (its samples are 5 s apart by default). */
export const HISTORY_REFRESH_MS = 2000

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
  const fleetView = scope.peek() === 'fleet'
  const [regionsResult, stampedesResult, fleetResult, incidentsResult] = await Promise.allSettled([
    api.regions(tok),
    fleetView ? Promise.resolve(null) : api.stampedes(STAMPEDES_LIMIT, tok),
    fleetView ? api.fleet(tok) : Promise.resolve(null),
    fleetView ? api.fleetStampedes(STAMPEDES_LIMIT, tok) : Promise.resolve(null),
  ])
  if (gen !== generation || fleetView !== (scope.peek() === 'fleet')) return
  const results = [regionsResult, stampedesResult, fleetResult, incidentsResult]
  if (results.some((r) => r.status === 'rejected' && isUnauthorized(r.reason))) {
    unauthorized()
    return
  }
  const t = Date.now()
  let shown: RegionJson[] | undefined
  batch(() => {
    if (regionsResult.status === 'fulfilled') {
      const local = Array.isArray(regionsResult.value.regions) ? regionsResult.value.regions : []
      if (!fleetView) shown = local
      else if (fleetResult.status === 'fulfilled' && fleetResult.value) {
        shown = fleetRegionsAsRegions(fleetResult.value, local)
        instances.value = fleetResult.value.instances
        selfInstance.value = fleetResult.value.self
      }
    }
    const failure = [regionsResult, fleetResult].find((r) => r.status === 'rejected')
    if (shown) {
      regions.value = shown
      history.value = appendSample(history.peek(), t, shown, { retentionMs: HISTORY_RETENTION_MS, maxSamples: 2000 })
      regionsError.value = null
      lastUpdated.value = t
    } else if (failure?.status === 'rejected') {
      regionsError.value = errorMessage(failure.reason)
    }
    if (fleetView) {
      if (incidentsResult.status === 'fulfilled' && incidentsResult.value) {
        incidents.value = Array.isArray(incidentsResult.value.stampedes) ? incidentsResult.value.stampedes : []
        stampedesError.value = null
      } else if (incidentsResult.status === 'rejected') stampedesError.value = errorMessage(incidentsResult.reason)
    } else if (stampedesResult.status === 'fulfilled' && stampedesResult.value) {
      stampedes.value = Array.isArray(stampedesResult.value.stampedes) ? stampedesResult.value.stampedes : []
      stampedesError.value = null
    } else if (stampedesResult.status === 'rejected') {
      stampedesError.value = errorMessage(stampedesResult.reason)
    }
  })
  void refreshHistory(false)
  if (!shown) return

  const names = shown.map((r) => r.name)
  const namesKey = JSON.stringify([fleetView, names])
  if (Date.now() - hotKeysFetchedAt < HOT_KEYS_MIN_INTERVAL_MS && namesKey === hotKeysFetchedFor) return
  hotKeysFetchedAt = Date.now()
  hotKeysFetchedFor = namesKey
  const hotResults = await Promise.allSettled(
    names.map((name) =>
      fleetView ? api.fleetHotKeys(name, HOT_KEYS_LIMIT, tok) : api.hotKeys(name, HOT_KEYS_LIMIT, tok),
    ),
  )
  if (gen !== generation || fleetView !== (scope.peek() === 'fleet')) return
  if (hotResults.some((r) => r.status === 'rejected' && isUnauthorized(r.reason))) {
    unauthorized()
    return
  }
  const next: Record<string, HotKeysState> = {}
  names.forEach((name, i) => {
    const result = hotResults[i]
    if (!result) return
    next[name] = result.status === 'fulfilled' ? { data: result.value } : { error: errorMessage(result.reason) }
  })
  hotKeys.value = next
}

/**
 * The fleet's regions in the shape of this process's: counters summed over the fleet; the expiration time and last
 * invalidation are this process's when it has the region (the buttons act through this exporter).
 */
function fleetRegionsAsRegions(fleet: FleetJson, local: RegionJson[]): RegionJson[] {
  return fleet.regions.map((region) => {
    const mine = local.find((r) => r.name === region.name)
    return {
      name: region.name,
      backend: region.backend ?? mine?.backend ?? null,
      configured: true,
      expirationTime: mine?.expirationTime ?? null,
      stats: region.stats,
      lastInvalidation: mine?.lastInvalidation ?? null,
    }
  })
}

let historyRequest: HistoryRequest = { key: '', startedAt: -Infinity, inFlight: false }
/** Bumped by every history request: only the answer to the latest one is kept. */
let historyRequestId = 0
/** Scopes whose history the exporter answered 404 to (it has history off): not asked again until `start()`. */
const historyAbsent = new Set<string>()

/**
 * Keeps the charts' server history current: the whole range when the scope or range changed (`force`), else only
 * the samples since the last one, at most every `HISTORY_REFRESH_MS` and never twice at once.
 */
async function refreshHistory(force: boolean): Promise<void> {
  const gen = generation
  const fleetView = scope.peek() === 'fleet'
  const range = historyRange.peek()
  const scopeKey = fleetView ? 'fleet' : 'process'
  const key = `${scopeKey}:${range}`
  if (historyAbsent.has(scopeKey)) return
  if (!historyRequestDue(historyRequest, key, force, Date.now(), HISTORY_REFRESH_MS)) return
  const current = historyRequest.key === key ? serverHistory.peek() : null
  const id = ++historyRequestId
  historyRequest = { key, startedAt: Date.now(), inFlight: true }
  try {
    const since = current?.samples.at(-1)?.at
    const answer = await api.history(fleetView, range, since, token.peek())
    if (gen !== generation || id !== historyRequestId) return
    serverHistory.value = mergeHistory(current, answer)
    historyError.value = null
  } catch (error) {
    if (gen !== generation || id !== historyRequestId) return
    if (isUnauthorized(error)) return unauthorized()
    if (error instanceof ApiError && error.status === 404) historyAbsent.add(scopeKey)
    historyError.value = errorMessage(error)
  } finally {
    if (id === historyRequestId) historyRequest = { ...historyRequest, inFlight: false }
  }
}

/** Switches the dashboard between this process and the fleet; everything shown starts afresh. */
export function setScope(next: Scope): void {
  if (scope.peek() === next) return
  batch(() => {
    scope.value = next
    regions.value = null
    history.value = emptyHistory()
    hotKeys.value = {}
    serverHistory.value = null
  })
  hotKeysFetchedAt = -Infinity
  refresher.request()
  void refreshHistory(true)
}

/** Shows another time range in the charts. */
export function setHistoryRange(next: RangeId): void {
  historyRange.value = next
  void refreshHistory(true)
}

/** Asks the exporter whether it has the fleet option (its `api/fleet` answers). */
async function probeFleet(gen: number): Promise<void> {
  try {
    await api.fleet(token.peek())
    if (gen === generation) fleetAvailable.value = true
  } catch (error) {
    if (gen !== generation || isUnauthorized(error)) return
    fleetAvailable.value = false
    if (scope.peek() === 'fleet') setScope('process')
  }
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
  historyAbsent.clear()
  batch(() => {
    connection.value = 'connecting'
    connectionDetail.value = ''
    authProblem.value = null
  })
  refresher.request()
  void refreshHistory(true)
  void probeFleet(gen)
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
