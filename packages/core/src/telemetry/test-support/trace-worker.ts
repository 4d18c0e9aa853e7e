/**
 * A process of the cross-process trace test (trace-link.test.ts), driven over IPC: the real OpenTelemetry SDK with
 * an in-memory exporter, a `catalog` region on the Redis of `REDIS_URL`, and a stampede on request, answered with the
 * spans it finished.
 *
 *   node --conditions=@corral/source --import tsx trace-worker.ts
 */
import { context, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { RegionRegistry } from '../../index.js'

const spans = new InMemorySpanExporter()
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] }))

const registry = new RegionRegistry()
const catalog = registry.createRegion({ name: 'catalog' }).configure('redis', {
  expirationTime: 60,
  arguments: { url: process.env.REDIS_URL, keyPrefix: `${process.env.PREFIX}:` },
})

interface Request {
  id: number
  op: string
  key: string
  callers: number
  creatorMs: number
}

process.on('message', (request: Request) => {
  void (async () => {
    if (request.op === 'close') {
      await registry.close()
      process.send?.({ id: request.id, ok: true })
      process.disconnect()
      return
    }
    spans.reset()
    let runs = 0
    await Promise.all(
      Array.from({ length: request.callers }, () =>
        catalog.getOrCreate(request.key, async () => {
          runs++
          await new Promise((resolve) => setTimeout(resolve, request.creatorMs))
          return 'value'
        }),
      ),
    )
    const finished = spans.getFinishedSpans().map((span) => ({
      name: span.name,
      traceId: span.spanContext().traceId,
      spanId: span.spanContext().spanId,
      attributes: span.attributes,
      links: span.links.map((link) => ({
        traceId: link.context.traceId,
        spanId: link.context.spanId,
        attributes: link.attributes ?? {},
      })),
    }))
    process.send?.({ id: request.id, ok: true, runs, spans: finished })
  })().catch((error: unknown) => process.send?.({ id: request.id, ok: false, error: String(error) }))
})
process.send?.({ started: true })
