import { formatClock } from '../format'
import { forgetToken } from '../live'
import { ScopeSwitch } from './scope-switch'
import {
  connection,
  connectionDetail,
  droppedEvents,
  eventsPerSecond,
  lastUpdated,
  token,
  tokenFormOpen,
} from '../store'

function Logo() {
  return (
    <svg class="logo" viewBox="0 0 24 24" aria-hidden="true">
      <rect x="1" y="1" width="22" height="22" rx="6" class="logo-bg" />
      <path d="M6 7v11M12 7v11M18 7v11M4.5 10.5h15M4.5 15h15" class="logo-fence" />
    </svg>
  )
}

export function ConnectionBadge() {
  const state = connection.value
  const dropped = droppedEvents.value
  const title = [connectionDetail.value, dropped ? `${dropped} events dropped by the server (slow client)` : '']
    .filter(Boolean)
    .join(' · ')
  return (
    <span class={`badge badge-${state}`} data-testid="connection-state" data-state={state} title={title} role="status">
      <span class="badge-dot" aria-hidden="true" />
      {state}
    </span>
  )
}

export function Header() {
  const updated = lastUpdated.value
  return (
    <header class="topbar">
      <div class="brand">
        <Logo />
        <span class="brand-name">Corral</span>
        <span class="brand-sub">cache dashboard</span>
      </div>
      <div class="topbar-meta">
        <ScopeSwitch />
        <ConnectionBadge />
        {connection.value === 'live' && <span class="meta">{eventsPerSecond.value} events/s</span>}
        <span class="meta" title="Time of the last successful refresh">
          updated {updated ? formatClock(updated) : '—'}
        </span>
        {token.value ? (
          <>
            <button type="button" class="btn btn-ghost btn-sm" onClick={() => (tokenFormOpen.value = true)}>
              Change token
            </button>
            <button type="button" class="btn btn-ghost btn-sm" onClick={forgetToken}>
              Forget token
            </button>
          </>
        ) : (
          <button type="button" class="btn btn-ghost btn-sm" onClick={() => (tokenFormOpen.value = true)}>
            Set token
          </button>
        )}
      </div>
    </header>
  )
}
