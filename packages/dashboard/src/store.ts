/** The dashboard's state: small signals, written by live.ts and read by the components. */
import { computed, signal } from '@preact/signals'
import type {
  FleetHotKeyJson,
  FleetInstanceJson,
  HistoryJson,
  HotKeysJson,
  IncidentJson,
  RegionJson,
  StampedeJson,
} from '@corral/exporter/api'
import { emptyHistory, type SampleHistory, windowRates } from './rates'
import type { ConnectionState } from './schedule'
import { type RangeId, samplesFromHistory } from './server-history'

const TOKEN_KEY = 'corral.dashboard.token'

function readStoredToken(): string | null {
  try {
    return sessionStorage.getItem(TOKEN_KEY)
  } catch {
    return null
  }
}

/** Kept in sessionStorage (this tab only, gone when it closes) when the user asks, else in memory only. */
export function storeToken(value: string | null, remember: boolean): void {
  token.value = value
  try {
    if (value !== null && remember) sessionStorage.setItem(TOKEN_KEY, value)
    else sessionStorage.removeItem(TOKEN_KEY)
  } catch {
    // Storage disabled: the token lives in memory only.
  }
}

export const token = signal<string | null>(readStoredToken())

// Connection
export const connection = signal<ConnectionState>('connecting')
/** Why the connection is in its state (the last stream error, when the next attempt is due...). */
export const connectionDetail = signal('')
/** Set when the API answered 401: 'required' when no token was sent, 'rejected' when one was. */
export const authProblem = signal<'required' | 'rejected' | null>(null)
/** The user opened the token form without a 401 (to change the token). */
export const tokenFormOpen = signal(false)

// Data
export const regions = signal<RegionJson[] | null>(null)
export const regionsError = signal<string | null>(null)
export const history = signal<SampleHistory>(emptyHistory())
export const lastUpdated = signal<number | null>(null)
export interface HotKeysState {
  /** in the fleet view, the keys carry their merge's error bound */
  data?: Omit<HotKeysJson, 'keys'> & { keys: Array<HotKeysJson['keys'][number] & Partial<FleetHotKeyJson>> }
  error?: string
}
export const hotKeys = signal<Record<string, HotKeysState>>({})
export const stampedes = signal<StampedeJson[] | null>(null)
export const stampedesError = signal<string | null>(null)

// Scope: this process, or every process of the fleet (when the exporter has the fleet option)
export type Scope = 'process' | 'fleet'
export const scope = signal<Scope>('process')
/** null until known: whether `api/fleet` answers (the exporter was started with the fleet option) */
export const fleetAvailable = signal<boolean | null>(null)
export const instances = signal<FleetInstanceJson[] | null>(null)
/** the instance id of the process whose exporter the page talks to */
export const selfInstance = signal<string | null>(null)
export const incidents = signal<IncidentJson[] | null>(null)

// The server's history behind the charts, for the chosen range
export const historyRange = signal<RangeId>('5m')
export const serverHistory = signal<HistoryJson | null>(null)
export const historyError = signal<string | null>(null)
/** the server history's counters, as the rate charts read them */
export const chartSamples = computed(() => (serverHistory.value ? samplesFromHistory(serverHistory.value).samples : []))

// Events seen on the stream since the page loaded
export const eventsPerSecond = signal(0)
export const droppedEvents = signal(0)
export const backendErrorEvents = signal(0)

/** The wall clock, ticking every second, for relative times. */
export const now = signal(Date.now())

// UI
export const chartRegion = signal('')
export const hotKeysRegion = signal('')
export interface PendingInvalidation {
  region: RegionJson
  hard: boolean
}
export const pendingInvalidation = signal<PendingInvalidation | null>(null)
/** The region whose "Invalidate tags" dialog is open. */
export const pendingTagInvalidation = signal<{ region: RegionJson } | null>(null)
export const invalidating = signal(false)
export interface Feedback {
  kind: 'success' | 'error'
  text: string
}
export const feedback = signal<Feedback | null>(null)

// Derived
/** Rates over the last ~5 s, all regions. */
export const recentRates = computed(() => windowRates(history.value.samples, 5000))

export const totals = computed(() => {
  const list = regions.value ?? []
  let hits = 0
  let stale = 0
  let misses = 0
  let coalesced = 0
  let regenerations = 0
  let regenerationErrors = 0
  let weightedRatio = 0
  let ratioWeight = 0
  for (const r of list) {
    const s = r.stats
    const gets = s.hits + s.stale + s.misses
    hits += s.hits
    stale += s.stale
    misses += s.misses
    coalesced += s.coalesced
    regenerations += s.regenerations
    regenerationErrors += s.regenerationErrors
    // Weight the exporter's own ratio by traffic, so that the overall figure follows its definition of a hit.
    if (typeof s.hitRatio === 'number' && gets > 0) {
      weightedRatio += s.hitRatio * gets
      ratioWeight += gets
    }
  }
  return {
    hits,
    stale,
    misses,
    gets: hits + stale + misses,
    coalesced,
    regenerations,
    regenerationErrors,
    hitRatio: ratioWeight > 0 ? weightedRatio / ratioWeight : null,
  }
})
