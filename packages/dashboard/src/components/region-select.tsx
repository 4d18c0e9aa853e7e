import type { Signal } from '@preact/signals'

/** The "All regions / one region" filter that panels put in their header; `''` means all. */
export function RegionSelect({ names, selected }: { names: string[]; selected: Signal<string> }) {
  return (
    <label class="select-label">
      <span class="sr-only">Region</span>
      <select class="select" value={selected.value} onChange={(e) => (selected.value = e.currentTarget.value)}>
        <option value="">All regions</option>
        {names.map((n) => (
          <option key={n} value={n}>
            {n}
          </option>
        ))}
      </select>
    </label>
  )
}
