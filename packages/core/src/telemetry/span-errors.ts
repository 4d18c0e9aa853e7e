import { SpanStatusCode, type Span } from '@opentelemetry/api'

/** Ends a span whose operation failed: the one place that records the exception and sets the status. */
export function endWithError(span: Span, error: unknown): void {
  const exception = error instanceof Error ? error : new Error(String(error))
  span.recordException(exception)
  span.setStatus({ code: SpanStatusCode.ERROR, message: exception.message })
  span.end()
}
