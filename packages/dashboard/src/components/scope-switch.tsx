import { setScope } from '../live'
import { fleetAvailable, scope, type Scope } from '../store'

const CHOICES: Array<{ scope: Scope; label: string; hint: string }> = [
  { scope: 'process', label: 'This process', hint: 'The regions of the process whose exporter serves this page' },
  { scope: 'fleet', label: 'Fleet', hint: "Every process that publishes to the fleet's Redis, summed" },
]

/** "This process | Fleet": shown only when the exporter has the fleet option. */
export function ScopeSwitch() {
  if (fleetAvailable.value !== true) return null
  return (
    <div class="segmented" role="group" aria-label="What the dashboard shows" data-testid="scope-switch">
      {CHOICES.map((choice) => (
        <button
          key={choice.scope}
          type="button"
          class="segment"
          aria-pressed={scope.value === choice.scope}
          data-testid={`scope-${choice.scope}`}
          title={choice.hint}
          onClick={() => setScope(choice.scope)}
        >
          {choice.label}
        </button>
      ))}
    </div>
  )
}
