import type { ComponentChildren } from 'preact'
import { formatInt, formatPercent, formatRate } from '../format'
import { windowRates } from '../rates'
import { backendErrorEvents, history, recentRates, totals } from '../store'

function Card(props: {
  label: string
  testid: string
  value: string
  sub?: ComponentChildren
  tone?: 'good' | 'warn' | 'bad' | undefined
  hint: string
}) {
  return (
    <div class={`card${props.tone ? ` card-${props.tone}` : ''}`} title={props.hint}>
      <div class="card-label">{props.label}</div>
      <div class="card-value" data-testid={props.testid}>
        {props.value}
      </div>
      <div class="card-sub">{props.sub}</div>
    </div>
  )
}

export function OverviewCards() {
  const t = totals.value
  const rates = recentRates.value?.perSecond
  const getsRate = rates ? rates.hits + rates.stale + rates.misses : null
  // Errors in the last five minutes make the card red; older ones only count.
  const fiveMinutes = windowRates(history.value.samples, 5 * 60_000)
  const recentErrors = fiveMinutes ? fiveMinutes.perSecond.regenerationErrors * (fiveMinutes.spanMs / 1000) : 0
  const backendErrors = backendErrorEvents.value
  const ratioTone = t.hitRatio === null ? undefined : t.hitRatio >= 0.9 ? 'good' : t.hitRatio >= 0.6 ? 'warn' : 'bad'

  return (
    <section class="cards" aria-label="Overview">
      <Card
        label="Gets / s"
        testid="overview-gets-rate"
        value={formatRate(getsRate)}
        hint="Gets per second over the last ~5 s, all regions (hits + stale + misses)"
        sub={
          rates ? (
            <>
              <span class="c-hit">{formatRate(rates.hits)} hit</span> ·{' '}
              <span class="c-stale">{formatRate(rates.stale)} stale</span> ·{' '}
              <span class="c-miss">{formatRate(rates.misses)} miss</span>
            </>
          ) : (
            'waiting for a second sample'
          )
        }
      />
      <Card
        label="Hit ratio"
        testid="overview-hit-ratio"
        value={formatPercent(t.hitRatio)}
        tone={ratioTone}
        hint="Since the exporter started: each region's hit ratio, weighted by its gets"
        sub={`${formatInt(t.gets)} gets since start`}
      />
      <Card
        label="Stampedes prevented"
        testid="overview-stampedes-prevented"
        value={formatInt(t.coalesced)}
        hint="Callers that needed a value and did not run the creator because another caller held the lock"
        sub={rates ? `${formatRate(rates.coalesced)}/s now` : 'coalesced callers since start'}
      />
      <Card
        label="Regenerations / s"
        testid="overview-regenerations-rate"
        value={formatRate(rates?.regenerations)}
        hint="Creator runs per second over the last ~5 s, all regions"
        sub={`${formatInt(t.regenerations)} since start`}
      />
      <Card
        label="Errors"
        testid="overview-errors"
        value={formatInt(t.regenerationErrors)}
        tone={recentErrors > 0 || backendErrors > 0 ? 'bad' : undefined}
        hint="Creator runs that threw, since the exporter started; backend errors are counted from the live stream"
        sub={
          backendErrors > 0
            ? `regeneration errors · ${backendErrors} backend errors seen`
            : recentErrors > 0
              ? `${formatInt(recentErrors)} in the last 5 min`
              : 'regeneration errors'
        }
      />
    </section>
  )
}
