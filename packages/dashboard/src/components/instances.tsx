import { formatInt } from '../format'
import { instances, scope, selfInstance } from '../store'
import { RelativeTime } from './relative-time'

/** The fleet's live processes, with when each last published. Fleet view only. */
export function Instances() {
  if (scope.value !== 'fleet') return null
  const list = instances.value
  return (
    <section class="panel" aria-labelledby="instances-title" data-testid="fleet-instances">
      <div class="panel-head">
        <h2 id="instances-title">Processes</h2>
        <span class="muted">
          {list ? `${list.length} live` : ''} · a process that stops publishing leaves after three intervals
        </span>
      </div>
      {!list && <p class="empty">Loading…</p>}
      {list && (
        <div class="scroll">
          <table class="table compact">
            <thead>
              <tr>
                <th scope="col">Host</th>
                <th scope="col" class="num">
                  PID
                </th>
                <th scope="col">Started</th>
                <th scope="col">Last seen</th>
                <th scope="col" class="num">
                  Gets
                </th>
                <th scope="col" class="num" title="Callers coalesced onto another's regeneration">
                  Stampedes prevented
                </th>
              </tr>
            </thead>
            <tbody>
              {list.map((instance) => {
                const gets = instance.regions.reduce((sum, r) => sum + r.stats.gets, 0)
                const coalesced = instance.regions.reduce((sum, r) => sum + r.stats.coalesced, 0)
                return (
                  <tr key={instance.id} data-testid="fleet-instance" data-pid={instance.pid} title={instance.id}>
                    <td class="nowrap">
                      {instance.hostname}
                      {instance.id === selfInstance.value && <span class="tag tag-self">this page's</span>}
                    </td>
                    <td class="num">{instance.pid}</td>
                    <td class="nowrap">
                      <RelativeTime at={instance.startedAt} />
                    </td>
                    <td class="nowrap" data-testid="last-seen">
                      <RelativeTime at={instance.lastSeen} />
                    </td>
                    <td class="num">{formatInt(gets)}</td>
                    <td class="num strong">{formatInt(coalesced)}</td>
                  </tr>
                )
              })}
            </tbody>
          </table>
        </div>
      )}
    </section>
  )
}
