import type { IncidentJson } from '@corral/exporter/api'

type StampedeFields = Pick<IncidentJson, 'at' | 'region' | 'key' | 'coalesced' | 'duration'>
import { formatDuration, formatInt } from '../format'
import { incidents, scope, stampedes, stampedesError } from '../store'
import { KeyText } from './key-text'
import { RelativeTime } from './relative-time'

/** The cells a stampede has in both tables (this process's, the fleet's): when, region, key, coalesced, regen time. */
function StampedeCells({ stampede, keyWidth }: { stampede: StampedeFields; keyWidth: number }) {
  return (
    <>
      <td class="nowrap">
        <RelativeTime at={stampede.at} />
      </td>
      <td class="nowrap">
        <span class="truncate region-cell" title={stampede.region}>
          {stampede.region}
        </span>
      </td>
      <td class="key-cell">
        <KeyText value={stampede.key} max={keyWidth} />
      </td>
      <td class="num strong">{formatInt(stampede.coalesced)}</td>
      <td class="num nowrap">{formatDuration(stampede.duration)}</td>
    </>
  )
}

/** One process's part in a fleet incident: the creator, or how many of its callers waited. */
function ProcessChip({ process }: { process: IncidentJson['processes'][number] }) {
  const creator = process.role === 'creator'
  return (
    <span
      class={`chip ${creator ? 'chip-creator' : 'chip-waiter'}`}
      data-testid="incident-process"
      data-pid={process.pid}
      data-role={process.role}
      data-coalesced={process.coalesced}
      title={`${process.hostname} pid ${process.pid} (${process.instance})`}
    >
      {creator ? 'creator ' : ''}pid {process.pid}: {formatInt(process.coalesced)} {creator ? 'joined' : 'waited'}
    </span>
  )
}

/** The fleet's stampedes, each once, with every process's part. */
function Incidents() {
  const list = incidents.value
  return (
    <section class="panel" aria-labelledby="stampedes-title" data-testid="stampedes">
      <div class="panel-head">
        <h2 id="stampedes-title">Recent stampedes in the fleet</h2>
        <span class="muted">
          one row per stampede: the process that ran the creator, and the callers that waited in each
        </span>
      </div>
      {stampedesError.value && <p class="inline-error">Could not load stampedes: {stampedesError.value}</p>}
      {list && list.length === 0 && <p class="empty">None yet.</p>}
      {!list && !stampedesError.value && <p class="empty">Loading…</p>}
      {list && list.length > 0 && (
        <div class="scroll scroll-tall">
          <table class="table compact">
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">Region</th>
                <th scope="col">Key</th>
                <th scope="col" class="num" title="Callers that did not run the creator, in every process">
                  Coalesced
                </th>
                <th scope="col" class="num">
                  Regen time
                </th>
                <th scope="col">Processes</th>
              </tr>
            </thead>
            <tbody>
              {list.map((incident, i) => (
                <tr
                  key={`${incident.at}-${incident.region}-${incident.key}-${i}`}
                  data-testid="incident"
                  data-region={incident.region}
                  data-key={incident.key}
                >
                  <StampedeCells stampede={incident} keyWidth={40} />
                  <td class="chips">
                    {incident.creator === null && (
                      <span class="chip chip-unknown" title="No process reported running the creator (yet)">
                        creator unknown
                      </span>
                    )}
                    {incident.processes.map((process) => (
                      <ProcessChip key={process.instance} process={process} />
                    ))}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  )
}

export function Stampedes() {
  if (scope.value === 'fleet') return <Incidents />
  const list = stampedes.value
  return (
    <section class="panel" aria-labelledby="stampedes-title" data-testid="stampedes">
      <div class="panel-head">
        <h2 id="stampedes-title">Recent stampedes</h2>
        <span class="muted">regenerations that other callers waited for</span>
      </div>
      {stampedesError.value && <p class="inline-error">Could not load stampedes: {stampedesError.value}</p>}
      {list && list.length === 0 && (
        <p class="empty">
          None yet. When concurrent callers miss the same key, one runs the creator and the others are coalesced onto
          it; each such regeneration shows up here.
        </p>
      )}
      {!list && !stampedesError.value && <p class="empty">Loading…</p>}
      {list && list.length > 0 && (
        <div class="scroll scroll-tall">
          <table class="table compact">
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">Region</th>
                <th scope="col">Key</th>
                <th scope="col" class="num" title="Callers that did not run the creator">
                  Coalesced
                </th>
                <th scope="col" class="num">
                  Regen time
                </th>
              </tr>
            </thead>
            <tbody>
              {list.map((s, i) => (
                <tr
                  key={`${s.at}-${s.region}-${s.key}-${i}`}
                  data-testid="stampede"
                  data-region={s.region}
                  data-key={s.key}
                >
                  <StampedeCells stampede={s} keyWidth={48} />
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  )
}
