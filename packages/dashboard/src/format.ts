/** Formatting for the dashboard: pure functions, no locale surprises (tests parse some of these strings). */

export const DASH = '—'

const isNumber = (n: unknown): n is number => typeof n === 'number' && Number.isFinite(n)

/** A plain integer with no grouping separators ("12345"), so that tests and people can compare it exactly. */
export function formatInt(n: number | null | undefined): string {
  return isNumber(n) ? String(Math.round(n)) : DASH
}

/** A per-second rate: "0", "0.4", "3.5", "42", "1.2k", "3.4M". */
export function formatRate(n: number | null | undefined): string {
  if (!isNumber(n)) return DASH
  const abs = Math.abs(n)
  if (abs === 0) return '0'
  if (abs < 0.05) return n < 0 ? '-<0.1' : '<0.1'
  if (abs < 10) return trimZeros(n.toFixed(1))
  if (abs < 10_000) return String(Math.round(n))
  if (abs < 10_000_000) return `${trimZeros((n / 1000).toFixed(abs < 100_000 ? 1 : 0))}k`
  return `${trimZeros((n / 1_000_000).toFixed(1))}M`
}

function trimZeros(s: string): string {
  return s.includes('.') ? s.replace(/\.?0+$/, '') : s
}

/** A 0..1 ratio as a percentage with one decimal ("93.4%"); "100%" only when it really is 1. */
export function formatPercent(ratio: number | null | undefined): string {
  if (!isNumber(ratio)) return DASH
  const pct = ratio * 100
  if (ratio >= 1) return '100%'
  // Never round 99.96% up to "100%": that would hide misses.
  const fixed = Math.floor(pct * 10) / 10
  return `${fixed.toFixed(1)}%`
}

/** A duration given in seconds: "850 µs", "12.3 ms", "1.24 s", "2 min 05 s". */
export function formatDuration(seconds: number | null | undefined): string {
  if (!isNumber(seconds) || seconds < 0) return DASH
  if (seconds === 0) return '0 ms'
  if (seconds < 0.001) return `${Math.max(1, Math.round(seconds * 1_000_000))} µs`
  if (seconds < 1) return `${threeDigits(seconds * 1000)} ms`
  if (seconds < 60) return `${threeDigits(seconds)} s`
  const total = Math.round(seconds)
  if (total < 3600) return `${Math.floor(total / 60)} min ${pad2(total % 60)} s`
  return `${Math.floor(total / 3600)} h ${pad2(Math.floor((total % 3600) / 60))} min`
}

/** Three significant digits at most, without trailing zeros: 1.24, 12.3, 123. */
function threeDigits(n: number): string {
  if (n >= 100) return String(Math.round(n))
  if (n >= 10) return trimZeros(n.toFixed(1))
  return trimZeros(n.toFixed(2))
}

const pad2 = (n: number) => String(n).padStart(2, '0')

/** An expiration time in seconds: "30 s", "5 min", "1.5 h", "no expiry". */
export function formatExpiration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined) return 'no expiry'
  if (!isNumber(seconds) || seconds < 0) return 'no expiry'
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`
  if (seconds < 120) return `${trimZeros(seconds.toFixed(1))} s`
  if (seconds < 7200) return `${trimZeros((seconds / 60).toFixed(1))} min`
  if (seconds < 172_800) return `${trimZeros((seconds / 3600).toFixed(1))} h`
  return `${trimZeros((seconds / 86_400).toFixed(1))} d`
}

/** How long ago `at` (epoch ms) was, seen from `now`: "just now", "12 s ago", "3 min ago", "2 h ago", "4 d ago". */
export function formatRelative(at: number | null | undefined, now: number): string {
  if (!isNumber(at)) return DASH
  const seconds = Math.floor((now - at) / 1000)
  if (seconds < 2) return 'just now'
  if (seconds < 60) return `${seconds} s ago`
  const minutes = Math.floor(seconds / 60)
  if (minutes < 60) return `${minutes} min ago`
  const hours = Math.floor(minutes / 60)
  if (hours < 48) return `${hours} h ago`
  return `${Math.floor(hours / 24)} d ago`
}

/** Local wall-clock time "HH:MM:SS". */
export function formatClock(at: number | null | undefined): string {
  if (!isNumber(at)) return DASH
  const d = new Date(at)
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`
}

/** Local date and time "YYYY-MM-DD HH:MM:SS.mmm", for tooltips. */
export function formatTimestamp(at: number | null | undefined): string {
  if (!isNumber(at)) return DASH
  const d = new Date(at)
  const ms = String(d.getMilliseconds()).padStart(3, '0')
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${formatClock(at)}.${ms}`
}

/**
 * Reads an `invalidatedAt` value as epoch milliseconds: epoch ms, epoch seconds (values below 1e11, i.e. before
 * 1973 as milliseconds) or an ISO 8601 string. Null when it is none of these.
 */
export function parseInstant(value: unknown): number | null {
  if (isNumber(value)) return value < 1e11 ? value * 1000 : value
  if (typeof value === 'string' && value.trim() !== '') {
    const asNumber = Number(value)
    if (Number.isFinite(asNumber)) return parseInstant(asNumber)
    const parsed = Date.parse(value)
    return Number.isNaN(parsed) ? null : parsed
  }
  return null
}

/**
 * Makes a cache key safe to show as text: C0 control characters and DEL become their visible Unicode "control
 * pictures" (a newline shows as ␊), so that keys differing only by invisible characters look different.
 */
export function displayKey(key: string): string {
  // eslint-disable-next-line no-control-regex
  return key.replace(/[\u0000-\u001f\u007f]/g, (c) => {
    const code = c.charCodeAt(0)
    return String.fromCharCode(code === 0x7f ? 0x2421 : 0x2400 + code)
  })
}

/**
 * Shortens `text` to at most `max` characters (code points, so surrogate pairs are never split) by replacing its
 * middle with "…": cache keys usually differ at their end ("users|get_user 12345"), so both ends are kept.
 */
export function truncateMiddle(text: string, max: number): string {
  const chars = Array.from(text)
  if (chars.length <= max) return text
  if (max <= 1) return '…'
  const keep = max - 1
  const head = Math.ceil(keep / 2)
  const tail = keep - head
  return chars.slice(0, head).join('') + '…' + (tail > 0 ? chars.slice(chars.length - tail).join('') : '')
}

/**
 * The badge of a region's circuit breaker: none while it is closed (or the region has none); `open` while calls
 * skip the backend, `half-open` while one call probes it. Summed over processes, the counts say how many are in
 * each state.
 */
export function circuitBadge(
  circuit: { closed: number; halfOpen: number; open: number } | null | undefined,
): { state: 'open' | 'half-open'; text: string; title: string } | null {
  if (!circuit) return null
  const processes = (n: number) => (circuit.closed + circuit.halfOpen + circuit.open > 1 ? ` (${n})` : '')
  if (circuit.open > 0)
    return {
      state: 'open',
      text: `circuit open${processes(circuit.open)}`,
      title:
        'Repeated backend failures: calls skip the backend (reads miss, writes are skipped) until a probe succeeds',
    }
  if (circuit.halfOpen > 0)
    return {
      state: 'half-open',
      text: `circuit half-open${processes(circuit.halfOpen)}`,
      title: 'One call is probing the backend after a cool-down; the others still skip it',
    }
  return null
}
