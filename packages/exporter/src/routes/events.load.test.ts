/**
 * What event-stream clients cost the cache they watch, as a figure (speed is never asserted here; see the README's
 * "Live events"): a region's hit rate with 0, 10 and 100 clients reading `?events=all` from a real exporter, where
 * every hit is an event each client receives. Each event is serialized once for all clients, and a client's
 * events of one event-loop turn go out in one write.
 */
import { describe, expect, it } from 'vitest'
import { reportFigure } from '@corral/core/testing'
import { hitRateWithStreams } from '../test-support/event-load.js'

describe('GET /api/events under load', () => {
  it('keeps the cache serving hits while 100 clients stream every event', async () => {
    const figures: Record<string, number> = {}
    for (const clients of [0, 10, 100]) {
      const { hitsPerSecond, bytesPerClient } = await hitRateWithStreams(clients, 1000)
      figures[`clients${clients}`] = Math.round(hitsPerSecond)
      if (clients > 0) {
        // every client got the stream: on average at least one frame per hit it was sent
        expect(bytesPerClient).toBeGreaterThan(hitsPerSecond * 0.5 * 40)
      }
    }
    reportFigure('exporter: region hits per second with N clients on /api/events?events=all', figures)
  }, 30_000)
})
