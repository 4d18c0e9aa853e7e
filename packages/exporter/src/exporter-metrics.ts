/**
 * The exporter's own metrics, on a prom-client registry of their own that `/metrics` serves next to Corral's
 * region metrics: the admin audit's `corral_admin_actions_total`, the event stream's client gauge and drop
 * counter, and the fleet's publish failures.
 */
import { Counter, Gauge, Registry } from 'prom-client'
import { ADMIN_OUTCOMES } from './audit.js'

export class ExporterMetrics {
  readonly registry = new Registry()
  /** Mutating admin requests by action and outcome; every pair starts at 0, so rates exist before the first one. */
  readonly adminActions: Counter<'action' | 'outcome'>
  readonly sseClients: Gauge
  readonly sseDropped: Counter
  readonly fleetPublishFailures: Counter

  /** `adminActions`: the audit actions of the admin write routes (see admin-writes.ts). */
  constructor(adminActions: readonly string[]) {
    const registers = [this.registry]
    this.adminActions = new Counter({
      name: 'corral_admin_actions_total',
      help: `Mutating admin API requests (${adminActions.join(', ')}) by outcome.`,
      labelNames: ['action', 'outcome'] as const,
      registers,
    })
    for (const action of adminActions)
      for (const outcome of ADMIN_OUTCOMES) this.adminActions.inc({ action, outcome }, 0)
    this.sseClients = new Gauge({
      name: 'corral_exporter_event_clients',
      help: 'Clients connected to the /api/events stream.',
      registers,
    })
    this.sseDropped = new Counter({
      name: 'corral_exporter_events_dropped_total',
      help: 'Events dropped because an /api/events client read too slowly.',
      registers,
    })
    this.fleetPublishFailures = new Counter({
      name: 'corral_exporter_fleet_publish_failures_total',
      help: "Snapshots this process could not publish to the fleet's Redis (0 without the fleet option).",
      registers,
    })
  }
}
