export { createRegion, regions, RegionRegistry } from './registry.js'
export { MAX_TAGS, MAX_TAG_LENGTH, tagListProblem, validateTags } from './tags.js'
export { CacheRegion } from './region.js'
export { backgroundRunner, type AsyncCreationRunner } from './lock/async-runner.js'
export type {
  ConfigureOptions,
  Creator,
  CreatorContext,
  FailSafeOptions,
  ResilienceOptions,
  GetOptions,
  GetOrCreateOptions,
  GetOrCreateResult,
  RegionDescription,
  RegionOptions,
  SetOptions,
  ShouldCache,
  TelemetryOptions,
  ValueMetadata,
  WrapEntry,
} from './region-options.js'
export {
  NO_VALUE,
  NOT_FRESH,
  CachedValue,
  FORMAT_VERSION,
  jsonSerializer,
  encodeCachedValue,
  decodeCachedValue,
} from './cached-value.js'
export type { NoValue, Serializer, CachedValueMetadata, ValueExtensions } from './cached-value.js'
export type {
  AcquireOptions,
  CacheBackend,
  CacheMutex,
  FencedStore,
  LockAcquisition,
  LockHolder,
  BackendFactory,
  BackendContext,
  RegionInvalidator,
  InvalidationState,
  FreshnessTest,
  L1Bus,
} from './backends/api.js'
export {
  TieredBackend,
  type TieredBackendOptions,
  type TierObserver,
  type L1EvictionCause,
} from './backends/tier/tiered-backend.js'
export type { L1Options } from './backends/tier/configure.js'
export { registerBackend, registeredBackends } from './backends/plugins.js'
export { ProxyBackend } from './backends/proxy.js'
export { MemoryBackend, type MemoryBackendOptions } from './backends/memory.js'
export { NullBackend } from './backends/null.js'
export { readArguments } from './backends/arguments.js'
export { LocalInvalidator, NOT_INVALIDATED } from './invalidation.js'
export { CacheDependency, DEPENDENCY_PREFIX } from './dependency.js'
export {
  sha1KeyMangler,
  functionKeyGenerator,
  functionMultiKeyGenerator,
  defaultArgToString,
  stableStringify,
  type KeyGenerator,
  type MultiKeyGenerator,
  type KeyMangler,
  type ArgToString,
} from './keys.js'
export { parseDuration, type Duration } from './durations.js'
export { CircuitOpenError, type CircuitBreakerOptions, type CircuitState } from './circuit-breaker.js'
export { cachedMethod } from './decorators.js'
export type {
  CachedFunction,
  CachedMethodDecorator,
  CachedMethodOf,
  MethodNames,
  CachedMultiFunction,
  CacheOnArgumentsOptions,
  CacheMultiOnArgumentsOptions,
} from './decorators.js'
export {
  CorralError,
  ValidationError,
  RegionNotConfiguredError,
  RegionAlreadyConfiguredError,
  PluginNotFoundError,
  BackendError,
  LockTimeoutError,
  CreatorTimeoutError,
  SerializationError,
} from './errors.js'
export {
  REGION_EVENT_NAMES,
  type RegionEventMap,
  type RegionEventName,
  type RegionEventListener,
  type MissReason,
  type Tier,
} from './telemetry/events.js'
export type { RegionStatsSnapshot, StampedeRecord } from './telemetry/stats.js'
export { HotKeyTracker, type HotKey, type HotKeyTrackerOptions } from './telemetry/hot-keys.js'
export type { Logger } from './telemetry/instrumentation.js'
export {
  tracingChannels,
  TRACING_CHANNEL_NAMES,
  type RegionOperation,
  type RegionOperationMessage,
  type RegionTracingChannel,
} from './telemetry/channels.js'
export { VERSION } from './version.js'
export { CorralMetrics, REGENERATION_BUCKETS, LOCK_WAIT_BUCKETS } from './telemetry/metrics.js'
