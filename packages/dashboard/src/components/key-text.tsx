import { displayKey, truncateMiddle } from '../format'

/**
 * A cache key, which is user data: rendered as a text node only, control characters made visible, shortened in
 * the middle when long, with the whole key in the tooltip.
 */
export function KeyText({ value, max = 64 }: { value: string; max?: number }) {
  const visible = displayKey(value)
  return (
    <span class="key" title={visible}>
      {truncateMiddle(visible, max)}
    </span>
  )
}
