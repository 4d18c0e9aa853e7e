import type { RegionJson } from '@corral/exporter/api'
import { circuitBadge, formatDuration, formatExpiration, formatInt, formatPercent } from '../format'
import { feedback, pendingInvalidation, pendingTagInvalidation, regions, regionsError } from '../store'
import { RelativeTime } from './relative-time'

function HitRatio({ ratio }: { ratio: number | null }) {
  const pct = typeof ratio === 'number' ? Math.max(0, Math.min(1, ratio)) * 100 : 0
  const tone = ratio === null ? '' : ratio >= 0.9 ? 'good' : ratio >= 0.6 ? 'warn' : 'bad'
  return (
    <span class="ratio">
      <span class="ratio-text">{formatPercent(ratio)}</span>
      <span class="meter" aria-hidden="true">
        <span class={`meter-fill meter-${tone}`} style={{ width: `${pct}%` }} />
      </span>
    </span>
  )
}

function Row({ region }: { region: RegionJson }) {
  const s = region.stats
  const gets = s.hits + s.stale + s.misses
  const p50 = s.regenerationTime?.p50 ?? null
  const p99 = s.regenerationTime?.p99 ?? null
  const last = region.lastInvalidation
  const noExpiry = region.expirationTime === null
  const circuit = circuitBadge(s.circuit)
  return (
    <tr data-testid={`region-row-${region.name}`}>
      <th scope="row" class="region-name">
        <span class="truncate" title={region.name}>
          {region.name}
        </span>
        <span class="region-sub">{noExpiry ? 'no expiration' : `ttl ${formatExpiration(region.expirationTime)}`}</span>
      </th>
      <td>
        {region.backend}
        {circuit && (
          <span
            class="err-pill"
            data-testid={`circuit-${region.name}`}
            data-state={circuit.state}
            title={circuit.title}
          >
            {circuit.text}
          </span>
        )}
      </td>
      <td>
        <HitRatio ratio={s.hitRatio} />
      </td>
      <td class="num" title={`${s.l1Hits} hits answered from process memory, with no backend round trip`}>
        <span data-testid={`l1-hit-ratio-${region.name}`}>{formatPercent(s.l1HitRatio)}</span>
      </td>
      <td class="num" title={`${s.hits} hits, ${s.stale} stale, ${s.misses} misses`}>
        {formatInt(gets)}
      </td>
      <td class="num">
        {formatInt(s.regenerations)}
        {s.regenerationErrors > 0 && (
          <span class="err-pill" title="Creator runs that threw">
            {formatInt(s.regenerationErrors)} err
          </span>
        )}
      </td>
      <td class="num">{formatInt(s.lockWaits)}</td>
      <td class="num strong">
        <span data-testid={`stampedes-prevented-${region.name}`}>{formatInt(s.coalesced)}</span>
      </td>
      <td class="num nowrap">
        {formatDuration(p50)} <span class="muted">/</span> {formatDuration(p99)}
      </td>
      <td class="nowrap">
        {last ? (
          <span title={`${last.hard ? 'Hard' : 'Soft'} invalidation, scope: ${last.scope}`}>
            <span class={`tag ${last.hard ? 'tag-hard' : 'tag-soft'}`}>{last.hard ? 'hard' : 'soft'}</span>{' '}
            <RelativeTime at={last.at} />
          </span>
        ) : (
          <span class="muted">never</span>
        )}
      </td>
      <td class="actions">
        <button
          type="button"
          class="btn btn-sm"
          data-testid={`invalidate-tags-${region.name}`}
          aria-haspopup="dialog"
          title="Invalidate the values that carry one or more tags"
          onClick={() => (pendingTagInvalidation.value = { region })}
        >
          Invalidate tag…
        </button>
        <button
          type="button"
          class="btn btn-sm"
          data-testid={`invalidate-soft-${region.name}`}
          title={
            noExpiry
              ? 'This region has no expiration time: the exporter will refuse a soft invalidation'
              : 'Values become stale: served while one caller per key regenerates'
          }
          onClick={() => (pendingInvalidation.value = { region, hard: false })}
        >
          Invalidate (soft)
        </button>
        <button
          type="button"
          class="btn btn-sm btn-danger"
          data-testid={`invalidate-hard-${region.name}`}
          title="Values become misses: the next callers regenerate"
          onClick={() => (pendingInvalidation.value = { region, hard: true })}
        >
          Invalidate (hard)
        </button>
      </td>
    </tr>
  )
}

export function RegionsTable() {
  const list = regions.value
  const message = feedback.value
  return (
    <section class="panel" aria-labelledby="regions-title">
      <div class="panel-head">
        <h2 id="regions-title">Regions</h2>
        <span class="muted">{list ? `${list.length} configured` : ''} · counters since the exporter started</span>
        {message && (
          <div class={`feedback feedback-${message.kind}`} role="status">
            <span data-testid="invalidate-feedback" data-kind={message.kind}>
              {message.text}
            </span>
            <button type="button" class="icon-btn" aria-label="Dismiss" onClick={() => (feedback.value = null)}>
              ×
            </button>
          </div>
        )}
      </div>
      {regionsError.value && <p class="inline-error">Could not load regions: {regionsError.value}</p>}
      <div class="table-wrap">
        <table class="table regions">
          <thead>
            <tr>
              <th scope="col">Region</th>
              <th scope="col">Backend</th>
              <th scope="col">Hit ratio</th>
              <th
                scope="col"
                class="num"
                title="Reads answered from the process's memory (an L1 in front of Redis or memcached, or a memory region)"
              >
                L1 hits
              </th>
              <th scope="col" class="num">
                Gets
              </th>
              <th scope="col" class="num">
                Regenerations
              </th>
              <th scope="col" class="num">
                Lock waits
              </th>
              <th scope="col" class="num" title="Callers coalesced onto another caller's regeneration">
                Stampedes prevented
              </th>
              <th scope="col" class="num">
                Regen p50 / p99
              </th>
              <th scope="col">Last invalidation</th>
              <th scope="col" class="actions-head">
                <span class="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {list?.map((r) => (
              <Row key={r.name} region={r} />
            ))}
            {list && list.length === 0 && (
              <tr>
                <td colSpan={11} class="empty">
                  No regions yet. Regions appear here once the application creates them in the exporter's registry.
                </td>
              </tr>
            )}
            {!list && (
              <tr>
                <td colSpan={11} class="empty">
                  Loading…
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
    </section>
  )
}
