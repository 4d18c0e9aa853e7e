import { formatRelative, formatTimestamp } from '../format'
import { now } from '../store'

/** "12 s ago", re-rendered every second on its own, with the exact local time as a tooltip. */
export function RelativeTime({ at, prefix = '' }: { at: number; prefix?: string }) {
  return (
    <time dateTime={new Date(at).toISOString()} title={formatTimestamp(at)}>
      {prefix}
      {formatRelative(at, now.value)}
    </time>
  )
}
