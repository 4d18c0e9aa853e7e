import { formatDuration, formatInt } from '../format'
import { stampedes, stampedesError } from '../store'
import { KeyText } from './key-text'
import { RelativeTime } from './relative-time'

export function Stampedes() {
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
                  <td class="nowrap">
                    <RelativeTime at={s.at} />
                  </td>
                  <td class="nowrap">
                    <span class="truncate region-cell" title={s.region}>
                      {s.region}
                    </span>
                  </td>
                  <td class="key-cell">
                    <KeyText value={s.key} max={48} />
                  </td>
                  <td class="num strong">{formatInt(s.coalesced)}</td>
                  <td class="num nowrap">{formatDuration(s.duration)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  )
}
