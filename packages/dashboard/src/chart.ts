/** Geometry for the inline-SVG charts: axis bounds and path data. No chart library. */

export interface Point {
  /** Epoch milliseconds. */
  t: number
  /** Null marks a gap. */
  v: number | null
}

/** The smallest "nice" number (1, 2, 2.5, 5 × 10^n) at or above `value`; 1 for zero, negative or invalid input. */
export function niceCeil(value: number): number {
  if (!Number.isFinite(value) || value <= 0) return 1
  const magnitude = 10 ** Math.floor(Math.log10(value))
  for (const step of [1, 2, 2.5, 5, 10]) {
    const nice = step * magnitude
    // Tolerate floating point noise (0.30000000000000004 is 0.3).
    if (nice >= value * (1 - 1e-9)) return Number(nice.toPrecision(12))
  }
  return 10 * magnitude
}

export interface Frame {
  start: number
  end: number
  width: number
  height: number
  yMax: number
}

const round = (n: number) => Math.round(n * 100) / 100

function xy(p: Point & { v: number }, f: Frame): [number, number] {
  const span = f.end - f.start || 1
  const x = ((p.t - f.start) / span) * f.width
  const y = f.height - (Math.min(p.v, f.yMax) / (f.yMax || 1)) * f.height
  return [round(x), round(y)]
}

/** Consecutive runs of non-null points inside the frame. */
function runs(points: readonly Point[], f: Frame): Array<Array<Point & { v: number }>> {
  const out: Array<Array<Point & { v: number }>> = []
  let current: Array<Point & { v: number }> = []
  for (const p of points) {
    if (p.v === null || !Number.isFinite(p.v) || p.t < f.start || p.t > f.end) {
      if (current.length) out.push(current)
      current = []
    } else {
      current.push(p as Point & { v: number })
    }
  }
  if (current.length) out.push(current)
  return out
}

/** SVG path data for a line through the points, broken at gaps; a lone point becomes a dot-sized segment. */
export function linePath(points: readonly Point[], frame: Frame): string {
  return runs(points, frame)
    .map((run) => {
      const coords = run.map((p) => xy(p, frame))
      const [x0, y0] = coords[0]!
      if (coords.length === 1) return `M${x0},${y0}h0.01`
      return (
        `M${x0},${y0}` +
        coords
          .slice(1)
          .map(([x, y]) => `L${x},${y}`)
          .join('')
      )
    })
    .join('')
}

/** SVG path data for the area under the line, down to the x axis, broken at gaps. */
export function areaPath(points: readonly Point[], frame: Frame): string {
  return runs(points, frame)
    .filter((run) => run.length > 1)
    .map((run) => {
      const coords = run.map((p) => xy(p, frame))
      const first = coords[0]!
      const last = coords[coords.length - 1]!
      return (
        `M${first[0]},${frame.height}` + coords.map(([x, y]) => `L${x},${y}`).join('') + `L${last[0]},${frame.height}Z`
      )
    })
    .join('')
}
