import { formatInt } from '../format'
import { hotKeys, hotKeysRegion, regions } from '../store'
import { KeyText } from './key-text'
import { RegionSelect } from './region-select'

function RegionHotKeys({ name }: { name: string }) {
  const state = hotKeys.value[name]
  const keys = state?.data?.keys ?? []
  const max = Math.max(1, ...keys.map((k) => k.count))
  return (
    <div class="subpanel" data-testid={`hot-keys-${name}`}>
      <div class="subpanel-head">
        <span class="subpanel-title truncate" title={name}>
          {name}
        </span>
        {state?.data && <span class="muted">last {formatInt(state.data.windowSeconds)} s</span>}
      </div>
      {state?.error && <p class="inline-error">{state.error}</p>}
      {!state && <p class="empty">Loading…</p>}
      {state?.data && keys.length === 0 && <p class="empty">No requests in this window.</p>}
      {keys.length > 0 && (
        <div class="scroll">
          <table class="table compact">
            <thead>
              <tr>
                <th scope="col">Key</th>
                <th scope="col" class="num">
                  Count
                </th>
                <th scope="col" class="num">
                  Hits / misses
                </th>
                <th scope="col" class="num">
                  Regens
                </th>
              </tr>
            </thead>
            <tbody>
              {keys.map((k) => (
                <tr key={k.key} data-testid="hot-key" data-key={k.key}>
                  <td class="key-cell">
                    <KeyText value={k.key} max={56} />
                    <span class="bar" aria-hidden="true" style={{ width: `${(k.count / max) * 100}%` }} />
                  </td>
                  <td class="num">
                    {formatInt(k.count)}
                    {k.error !== undefined && k.error > 0 && (
                      <span
                        class="muted"
                        data-testid="hot-key-error"
                        title="Merged over the fleet: processes that do not list this key may have seen it up to this many times more"
                      >
                        {' '}
                        +≤{formatInt(k.error)}
                      </span>
                    )}
                  </td>
                  <td class="num">
                    <span class="c-hit">{formatInt(k.hits)}</span> <span class="muted">/</span>{' '}
                    <span class="c-miss">{formatInt(k.misses)}</span>
                  </td>
                  <td class="num">{formatInt(k.regenerations)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  )
}

export function HotKeys() {
  const names = (regions.value ?? []).map((r) => r.name)
  const selected = hotKeysRegion.value
  const shown = selected && names.includes(selected) ? [selected] : names
  return (
    <section class="panel" aria-labelledby="hot-keys-title">
      <div class="panel-head">
        <h2 id="hot-keys-title">Hot keys</h2>
        <span class="muted">most requested, per region</span>
        <RegionSelect names={names} selected={hotKeysRegion} />
      </div>
      {names.length === 0 ? (
        <p class="empty">No regions.</p>
      ) : (
        <div class="subpanels">
          {shown.map((n) => (
            <RegionHotKeys key={n} name={n} />
          ))}
        </div>
      )}
    </section>
  )
}
