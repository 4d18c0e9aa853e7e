/**
 * What a fenced write needs to know about the value it would replace: its creation time, read from the stored
 * bytes' header (`c2:<ct>:...`) without decoding the value.
 */
import { FORMAT_VERSION } from '../../cached-value.js'
import { FUTURE_CREATION_TOLERANCE_MS } from '../../freshness.js'

/** How often a fenced write reads again after a conflicting write before it gives up (and does not store). */
export const FENCED_WRITE_ATTEMPTS = 10

const HEADER_PREFIX = Buffer.from(`c${FORMAT_VERSION}:`, 'latin1')
/** far more digits than any creation time has: a longer field is not a header */
const MAX_CT_CHARS = 32

/** The creation time in a stored value's header; `NaN` for bytes that are not a value of this format. */
export function storedCreationTime(data: Buffer): number {
  if (data.length <= HEADER_PREFIX.length || !data.subarray(0, HEADER_PREFIX.length).equals(HEADER_PREFIX))
    return Number.NaN
  const end = data.indexOf(0x3a /* ':' */, HEADER_PREFIX.length)
  if (end <= HEADER_PREFIX.length || end > HEADER_PREFIX.length + MAX_CT_CHARS) return Number.NaN
  return Number(data.toString('latin1', HEADER_PREFIX.length, end))
}

/**
 * Whether the stored bytes are a value created after `since` (bytes that are no value never are). A creation
 * time more than a second ahead of this host's clock is not believed, as in the region's freshness rule, so a
 * host with a fast clock cannot pin its value against every later write.
 */
export function createdAfter(data: Buffer, since: number): boolean {
  const ct = storedCreationTime(data)
  return ct > since && ct <= Date.now() + FUTURE_CREATION_TOLERANCE_MS
}
