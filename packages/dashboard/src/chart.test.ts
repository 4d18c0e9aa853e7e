import { describe, expect, it } from 'vitest'
import { areaPath, linePath, niceCeil } from './chart'

describe('niceCeil', () => {
  it.each([
    [0, 1],
    [-3, 1],
    [Number.NaN, 1],
    [0.3, 0.5],
    [1, 1],
    [1.2, 2],
    [2.2, 2.5],
    [7, 10],
    [12, 20],
    [240, 250],
    [4100, 5000],
  ])('%s → %s', (v, nice) => expect(niceCeil(v)).toBe(nice))
})

describe('linePath', () => {
  const frame = { start: 0, end: 100, width: 200, height: 50, yMax: 10 }

  it('maps time to x and value to y (0 at the bottom)', () => {
    expect(
      linePath(
        [
          { t: 0, v: 0 },
          { t: 50, v: 5 },
          { t: 100, v: 10 },
        ],
        frame,
      ),
    ).toBe('M0,50L100,25L200,0')
  })

  it('breaks the line at gaps and draws lone points as dots', () => {
    expect(
      linePath(
        [
          { t: 0, v: 0 },
          { t: 10, v: 0 },
          { t: 20, v: null },
          { t: 30, v: 10 },
        ],
        frame,
      ),
    ).toBe('M0,50L20,50M60,0h0.01')
  })

  it('clips values above the axis maximum and drops points outside the time frame', () => {
    expect(
      linePath(
        [
          { t: -10, v: 1 },
          { t: 0, v: 20 },
          { t: 100, v: 0 },
        ],
        frame,
      ),
    ).toBe('M0,0L200,50')
  })
})

describe('areaPath', () => {
  it('closes each run down to the axis', () => {
    const frame = { start: 0, end: 100, width: 100, height: 10, yMax: 10 }
    expect(
      areaPath(
        [
          { t: 0, v: 5 },
          { t: 100, v: 10 },
        ],
        frame,
      ),
    ).toBe('M0,10L0,5L100,0L100,10Z')
  })
})
