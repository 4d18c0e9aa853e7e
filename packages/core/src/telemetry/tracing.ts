import type { Tier } from './events.js'
import {
  ProxyTracerProvider,
  context,
  createContextKey,
  trace,
  type Attributes,
  type Link,
  type Span,
  type SpanContext,
  type Tracer,
} from '@opentelemetry/api'
import { VERSION } from '../version.js'
import { BackendSpans } from './backend-spans.js'
import { endWithError } from './span-errors.js'
import { currentTick } from './tick.js'

/** The no-op provider the API falls back to while no SDK is registered. */
const NOOP_PROVIDER = new ProxyTracerProvider().getDelegate()

export const TRACER_NAME = '@corral/core'

export type GetResult = 'hit' | 'stale' | 'miss'

/**
 * A `getOrCreate` call whose `corral.get_or_create` span was started before the lock ran (see `callScope`): the
 * lock's report finishes it instead of recording a span of its own.
 */
interface PendingCall {
  readonly tracing: RegionTracing
  readonly key: string
  readonly span: Span
  claimed: boolean
}

const PENDING_CALL = createContextKey('corral.pending_call')

/** The spans of the region's own operations besides `getOrCreate` and the invalidations. */
export type OperationSpanName =
  'corral.get' | 'corral.get_multi' | 'corral.set' | 'corral.set_multi' | 'corral.delete' | 'corral.delete_multi'

/**
 * OpenTelemetry spans for one region, through `@opentelemetry/api` only. While no SDK is registered, `enabled`
 * is false and the region skips span work entirely, so the API costs nothing on the hit path; registering an SDK
 * later is picked up on the next call.
 */
export class RegionTracing {
  private readonly tracer: Tracer
  private checkedAt = -1
  private sdkRegistered = false
  /** CLIENT spans around backend round trips, when the region asked for them (`telemetry.backendSpans`) */
  readonly backend: BackendSpans | undefined

  constructor(
    private readonly region: string,
    private readonly backendName: () => string,
    private readonly recordKeys: boolean,
    backendSpans = false,
  ) {
    this.tracer = trace.getTracer(TRACER_NAME, VERSION)
    this.backend = backendSpans ? new BackendSpans(this.tracer, region, recordKeys) : undefined
  }

  /**
   * Whether an SDK is registered. Re-checked once a second (a provider registered later is picked up within a
   * second), so the hit path pays a comparison, not a global lookup.
   */
  get enabled(): boolean {
    const tick = currentTick()
    if (tick !== this.checkedAt) {
      this.checkedAt = tick
      const provider = trace.getTracerProvider()
      this.sdkRegistered =
        (provider instanceof ProxyTracerProvider ? provider.getDelegate() : provider) !== NOOP_PROVIDER
    }
    return this.sdkRegistered
  }

  private attributes(key: string, result?: GetResult): Attributes {
    const attributes: Attributes = { 'corral.region': this.region, 'corral.backend': this.backendName() }
    if (this.recordKeys) attributes['corral.key'] = key
    if (result) attributes['corral.result'] = result
    return attributes
  }

  /**
   * Runs a `getOrCreate` call inside its `corral.get_or_create` span, started now and active while the lock runs,
   * so that the CLIENT spans of its backend round trips nest under it. Only with backend spans: without them the
   * lock records a hit's span after the fact, which costs the hit path less. The lock's report finishes the span
   * (`recordFinished`, or `start` then `endSpan`); a call it never reported is ended here.
   */
  async callScope<T>(key: string, run: () => Promise<T>): Promise<T> {
    const span = this.tracer.startSpan('corral.get_or_create', { attributes: this.attributes(key) })
    const pending: PendingCall = { tracing: this, key, span, claimed: false }
    try {
      const value = await context.with(trace.setSpan(context.active(), span).setValue(PENDING_CALL, pending), run)
      if (!pending.claimed) span.end()
      return value
    } catch (error) {
      if (!pending.claimed) endWithError(span, error)
      throw error
    }
  }

  /** The pending span of this call (same region, same key), taken at most once. */
  private claim(key: string): Span | undefined {
    const pending = context.active().getValue(PENDING_CALL) as PendingCall | undefined
    if (pending === undefined || pending.claimed || pending.tracing !== this || pending.key !== key) return undefined
    pending.claimed = true
    return pending.span
  }

  /**
   * A `corral.get_or_create` span for a call already answered (a hit, or a coalesced caller); a hit carries the
   * tier that answered it as `corral.tier` (`l1`: this process's memory, `l2`: the backend).
   */
  recordFinished(
    key: string,
    result: GetResult,
    startTime: number,
    links?: Link[],
    lockWaitSeconds?: number,
    tier?: Tier,
  ): void {
    const pending = this.claim(key)
    if (pending !== undefined) {
      pending.setAttribute('corral.result', result)
      if (tier !== undefined) pending.setAttribute('corral.tier', tier)
      if (links) pending.addLinks(links)
      if (lockWaitSeconds !== undefined) pending.addEvent('cache.lock_wait', { duration_s: lockWaitSeconds })
      pending.end()
      return
    }
    const attributes = this.attributes(key, result)
    if (tier !== undefined) attributes['corral.tier'] = tier
    const span = this.tracer.startSpan('corral.get_or_create', {
      startTime,
      attributes,
      ...(links ? { links } : {}),
    })
    if (lockWaitSeconds !== undefined) span.addEvent('cache.lock_wait', { duration_s: lockWaitSeconds })
    span.end()
  }

  /** Starts the `corral.get_or_create` span of a call that has to do more than read. */
  start(key: string, startTime: number): Span {
    return (
      this.claim(key) ?? this.tracer.startSpan('corral.get_or_create', { startTime, attributes: this.attributes(key) })
    )
  }

  /**
   * Runs one of the region's operations (get, set, delete and their multi-key forms) inside its span, with the
   * region, the backend and the key (or the keys, unless `recordKeys` is false). `describe` may add attributes
   * from the result (a get's `corral.result`).
   */
  async operation<T>(
    name: OperationSpanName,
    keys: string | readonly string[],
    run: () => Promise<T>,
    describe?: (result: T, span: Span) => void,
  ): Promise<T> {
    const attributes: Attributes = { 'corral.region': this.region, 'corral.backend': this.backendName() }
    if (typeof keys === 'string') {
      if (this.recordKeys) attributes['corral.key'] = keys
    } else {
      if (this.recordKeys) attributes['corral.keys'] = [...keys]
      attributes['corral.key_count'] = keys.length
    }
    const span = this.tracer.startSpan(name, { attributes })
    try {
      const result = await context.with(trace.setSpan(context.active(), span), run)
      describe?.(result, span)
      span.end()
      return result
    } catch (error) {
      endWithError(span, error)
      throw error
    }
  }

  /**
   * Runs an invalidation inside a `corral.invalidate` span: `scope` region | key | tag | dependency, and the tags or
   * dependency it names (kept out with `recordKeys: false`, like keys).
   */
  async invalidation<T>(scope: string, hard: boolean, targets: readonly string[], run: () => Promise<T>): Promise<T> {
    const attributes: Attributes = {
      'corral.region': this.region,
      'corral.backend': this.backendName(),
      'corral.invalidation.scope': scope,
      'corral.invalidation.hard': hard,
    }
    if (this.recordKeys && targets.length > 0) attributes['corral.invalidation.targets'] = [...targets]
    const span = this.tracer.startSpan('corral.invalidate', { attributes })
    try {
      const result = await context.with(trace.setSpan(context.active(), span), run)
      span.end()
      return result
    } catch (error) {
      endWithError(span, error)
      throw error
    }
  }

  /**
   * Runs the creator inside a `corral.regenerate` span that is a child of `parent` and the active span while the
   * creator runs, so the creator's own spans (a database query) nest under it.
   */
  async regenerate<T>(
    parent: Span | undefined,
    keys: readonly string[],
    onStart: (span: SpanContext) => void,
    run: () => Promise<T>,
  ): Promise<T> {
    const parentContext = parent ? trace.setSpan(context.active(), parent) : context.active()
    const attributes: Attributes = { 'corral.region': this.region, 'corral.backend': this.backendName() }
    if (this.recordKeys) attributes['corral.keys'] = [...keys]
    const span = this.tracer.startSpan('corral.regenerate', { attributes }, parentContext)
    onStart(span.spanContext())
    try {
      // The creator's own getOrCreate calls are calls of their own, not the pending call of this one.
      const value = await context.with(trace.setSpan(parentContext, span).deleteValue(PENDING_CALL), run)
      span.end()
      return value
    } catch (error) {
      endWithError(span, error)
      throw error
    }
  }
}

/** Ends a span for a call that ended (errors through `endWithError`, the one place that records them). */
export function endSpan(span: Span, result: GetResult | undefined, error?: unknown): void {
  if (result) span.setAttribute('corral.result', result)
  if (error === undefined) span.end()
  else endWithError(span, error)
}

/** A span context as a W3C `traceparent` header value, to carry it across processes. */
export function formatTraceparent(context: SpanContext): string {
  return `00-${context.traceId}-${context.spanId}-${(context.traceFlags & 0xff).toString(16).padStart(2, '0')}`
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/

/** The span context of a W3C `traceparent`, or undefined when it is not one. */
export function parseTraceparent(traceparent: string | undefined): SpanContext | undefined {
  const match = traceparent === undefined ? null : TRACEPARENT.exec(traceparent)
  if (!match) return undefined
  return { traceId: match[1]!, spanId: match[2]!, traceFlags: Number.parseInt(match[3]!, 16), isRemote: true }
}

/** Links `span` to the span of another process's lock holder, saying why. */
export function linkTo(span: Span, holder: { traceparent?: string } | undefined, reason: string): void {
  const context = parseTraceparent(holder?.traceparent)
  if (context !== undefined) span.addLink({ context, attributes: { 'corral.link.reason': reason } })
}
