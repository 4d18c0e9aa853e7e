import type { Span } from '@opentelemetry/api'
import type { CallInfo } from '../lock/dogpile.js'
import { tracingChannels, type RegionOperation, type RegionOperationMessage } from './channels.js'
import type { OperationSpanName, RegionTracing } from './tracing.js'

/** The operations with a span of their own here (`getOrCreate`'s comes from the lock, invalidations' from the region). */
const SPAN_NAMES: Readonly<Partial<Record<RegionOperation, OperationSpanName>>> = {
  get: 'corral.get',
  getMulti: 'corral.get_multi',
  set: 'corral.set',
  setMulti: 'corral.set_multi',
  delete: 'corral.delete',
  deleteMulti: 'corral.delete_multi',
}

/** What a message says of its call besides the operation, region and backend. */
type OperationFields = Pick<RegionOperationMessage, 'key' | 'keys' | 'tags' | 'hard'>

/**
 * How a region's public operations are observed from outside: their `diagnostics_channel` tracing channel and their
 * OpenTelemetry span. A region asks `observed(operation)` first, and goes through `run` only then, so an operation
 * nobody observes costs a property read or two and allocates nothing.
 */
export class RegionOperations {
  constructor(
    private readonly region: string,
    private readonly backendName: () => string,
    private readonly tracing: RegionTracing | undefined,
  ) {}

  /** Whether anyone observes `operation` now: a subscriber of its channel, or its span with an SDK registered. */
  observed(operation: RegionOperation): boolean {
    return tracingChannels[operation].hasSubscribers || this.#spanned(operation)
  }

  /**
   * Runs one call of `operation`: inside its span when traced (for `getOrCreate`, inside the pending
   * `corral.get_or_create` span when backend spans are on), itself inside the channel's `tracePromise` when
   * subscribed; `run` gets the channel's message then, to complete it. `describe` adds attributes from the result
   * to the span.
   */
  run<T>(
    operation: RegionOperation,
    fields: OperationFields,
    run: (message: RegionOperationMessage | undefined) => Promise<T>,
    describe?: (result: T, span: Span) => void,
  ): Promise<T> {
    const channel = tracingChannels[operation]
    const message: RegionOperationMessage | undefined = channel.hasSubscribers
      ? { operation, region: this.region, backend: this.backendName(), ...fields }
      : undefined
    const call = () => run(message)
    const traced = this.#spanned(operation) ? this.#inSpan(operation, fields, call, describe) : call
    return message === undefined ? traced() : channel.tracePromise(traced, message)
  }

  /**
   * One `getOrCreate` (or `getOrCreateResult`) call through `run`: when the channel is subscribed, its message says
   * how the value was obtained (`outcome`, `tier`, `created`) by the time `asyncEnd` is published. `run` gets the
   * `CallInfo` to fill in: the caller's (`getOrCreateResult`), one for the message, or none.
   */
  getOrCreate<T>(key: string, info: CallInfo | undefined, run: (info: CallInfo | undefined) => Promise<T>): Promise<T> {
    return this.run('getOrCreate', { key }, (message) => {
      if (message === undefined) return run(info)
      const how: CallInfo = info ?? { result: 'miss', tier: undefined, created: false }
      return run(how).then((value) => {
        message.outcome = how.result
        message.tier = how.tier
        message.created = how.created
        return value
      })
    })
  }

  #spanned(operation: RegionOperation): boolean {
    const tracing = this.tracing
    if (tracing === undefined) return false
    if (operation === 'getOrCreate') return tracing.backend !== undefined && tracing.enabled
    return SPAN_NAMES[operation] !== undefined && tracing.enabled
  }

  #inSpan<T>(
    operation: RegionOperation,
    fields: OperationFields,
    run: () => Promise<T>,
    describe: ((result: T, span: Span) => void) | undefined,
  ): () => Promise<T> {
    const tracing = this.tracing!
    if (operation === 'getOrCreate') return () => tracing.callScope(fields.key ?? '', run)
    const name = SPAN_NAMES[operation]!
    return () => tracing.operation(name, fields.key ?? fields.keys ?? [], run, describe)
  }
}
