/**
 * A coarse shared clock: a counter that advances once a second. Hot paths compare it with a remembered value to
 * do periodic work (reset a budget, re-check a setting) without reading a clock on every call.
 */
let tick = 0
let started = false

export function currentTick(): number {
  if (!started) {
    started = true
    setInterval(() => tick++, 1000).unref()
  }
  return tick
}
