import { NO_VALUE, type NoValue } from './cached-value.js'
import { parseExpiration, type Duration } from './durations.js'
import { describeValue } from './describe-value.js'
import { ValidationError } from './errors.js'
import type { ArgToString, KeyGenerator, MultiKeyGenerator } from './keys.js'
import { RESILIENCE_OPTION_NAMES, rejectUnknown, setsPolicy } from './policy.js'
import type { GetOrCreateOptions, ResilienceOptions, ShouldCache } from './region-options.js'
import type { CacheRegion } from './region.js'

export interface CacheOnArgumentsOptions<R, Args extends unknown[] = unknown[]> extends ResilienceOptions {
  /** Told apart from other functions of the same name: the key becomes `name|namespace|args`. */
  namespace?: string
  /** Tags stored with each value (for `region.invalidateTags`), or a function of the call's arguments. */
  tags?: readonly string[] | ((...args: Args) => readonly string[])
  /** A duration, or a function returning one, evaluated on every call (dogpile's callable expiration_time). */
  expirationTime?: Duration | (() => Duration)
  shouldCache?: ShouldCache<R>
  /** Renders each argument for the default key generator. */
  toStr?: ArgToString
  /** Overrides the region's key generator for this function. */
  keyGenerator?: KeyGenerator
}

export interface CacheMultiOnArgumentsOptions<R> {
  namespace?: string
  /** Tags stored with every value this call creates. */
  tags?: readonly string[]
  expirationTime?: Duration | (() => Duration)
  shouldCache?: ShouldCache<R>
  toStr?: ArgToString
  keyGenerator?: MultiKeyGenerator
  /**
   * The function returns a Map (or object) of argument → value instead of an array; arguments it leaves out are
   * not cached and are left out of the result, which has the same kind (Map or object) as the function's.
   */
  asDict?: boolean
}

/** A function cached by its arguments, with dogpile.cache's helpers attached. */
export interface CachedFunction<Args extends unknown[], R, This = unknown> {
  (this: This, ...args: Args): Promise<Awaited<R>>
  /** Deletes the cached value for these arguments. */
  invalidate(...args: Args): Promise<void>
  /** Stores `value` as the result for these arguments, without calling the function. */
  set(value: Awaited<R>, ...args: Args): Promise<void>
  /** The cached value for these arguments, or `NO_VALUE`; never calls the function. */
  get(...args: Args): Promise<Awaited<R> | NoValue>
  /** Calls the function, stores and returns its value, whatever is cached. */
  refresh(this: This, ...args: Args): Promise<Awaited<R>>
  /** The cache key these arguments map to. */
  key(...args: Args): string
  /** The undecorated function. */
  readonly original: (this: This, ...args: Args) => R
}

type DictLike<A, R> = Map<A, R> | Record<string, R>

export interface CachedMultiFunction<A, R, Out = R[]> {
  (...args: A[]): Promise<Out>
  invalidate(...args: A[]): Promise<void>
  /** Stores values by argument: a Map, or an object whose keys are the arguments. */
  set(values: DictLike<A, R>): Promise<void>
  get(...args: A[]): Promise<Array<R | NoValue>>
  refresh(...args: A[]): Promise<Out>
  keys(...args: A[]): string[]
  readonly original: (...args: A[]) => unknown
}

/** Validates a decorator's expiration once, and returns the per-call resolver. */
function expirationResolver(expirationTime: Duration | (() => Duration) | undefined): () => Duration | undefined {
  if (expirationTime === undefined) return () => undefined
  if (typeof expirationTime === 'function') return expirationTime
  parseExpiration(expirationTime, 'expirationTime')
  return () => expirationTime
}

function assertFunction(fn: unknown, method: string): void {
  if (typeof fn !== 'function')
    throw new ValidationError(`${method}(): expected a function to cache; got ${describeValue(fn)}`)
}

const CACHE_ON_ARGUMENTS_OPTIONS = [
  'namespace',
  'tags',
  'expirationTime',
  'shouldCache',
  'toStr',
  'keyGenerator',
  ...RESILIENCE_OPTION_NAMES,
]
const CACHE_MULTI_ON_ARGUMENTS_OPTIONS = [
  'namespace',
  'tags',
  'expirationTime',
  'shouldCache',
  'toStr',
  'keyGenerator',
  'asDict',
]

/** The resilience options a decorator passes on to every call (an empty object when it sets none). */
function pickResilience(options: ResilienceOptions): ResilienceOptions {
  if (!setsPolicy(options)) return {}
  const picked: Record<string, unknown> = {}
  for (const name of RESILIENCE_OPTION_NAMES) if (options[name] !== undefined) picked[name] = options[name]
  return picked as ResilienceOptions
}

export function cacheOnArguments<Args extends unknown[], R, This>(
  region: CacheRegion,
  fn: (this: This, ...args: Args) => R,
  options: CacheOnArgumentsOptions<Awaited<R>, Args> = {},
): CachedFunction<Args, R, This> {
  assertFunction(fn, 'cacheOnArguments')
  rejectUnknown(options, CACHE_ON_ARGUMENTS_OPTIONS, 'cacheOnArguments()')
  const resilience = pickResilience(options)
  const generate = (options.keyGenerator ?? region.keyGenerator)(options.namespace, fn as never, {
    toStr: options.toStr,
  })
  const keyFor = (args: Args) => generate(...args)
  const expiration = expirationResolver(options.expirationTime)
  const shouldCache = options.shouldCache
  const tagsOption = options.tags
  const tagsFor = (args: Args): readonly string[] | undefined =>
    typeof tagsOption === 'function' ? tagsOption(...args) : tagsOption

  /** A call's options; undefined when there are none, so that the region's quick path for a hit applies. */
  const callOptions = (args: Args): GetOrCreateOptions<Awaited<R>> | undefined => {
    const expirationTime = expiration()
    const tags = tagsFor(args)
    const built: GetOrCreateOptions<Awaited<R>> = {
      ...resilience,
      ...(expirationTime !== undefined ? { expirationTime } : {}),
      ...(shouldCache ? { shouldCache } : {}),
      ...(tags !== undefined ? { tags } : {}),
    }
    return Object.keys(built).length === 0 ? undefined : built
  }
  // Options that do not depend on the call (no function for expirationTime or tags) are built once.
  const perCall = typeof options.expirationTime === 'function' || typeof tagsOption === 'function'
  const fixedOptions = perCall ? undefined : callOptions([] as unknown as Args)

  const cached = function (this: This, ...args: Args): Promise<Awaited<R>> {
    return region.getOrCreate(
      keyFor(args),
      () => fn.apply(this, args) as Awaited<R>,
      perCall ? callOptions(args) : fixedOptions,
    )
  } as CachedFunction<Args, R, This>

  Object.defineProperty(cached, 'name', { value: fn.name })
  cached.invalidate = (...args) => region.delete(keyFor(args))
  cached.set = (value, ...args) => {
    const tags = tagsFor(args)
    return region.set(keyFor(args), value, tags !== undefined ? { tags } : undefined)
  }
  cached.get = (...args) => {
    const expirationTime = expiration()
    return region.get<Awaited<R>>(keyFor(args), expirationTime !== undefined ? { expirationTime } : undefined)
  }
  cached.refresh = async function (this: This, ...args: Args): Promise<Awaited<R>> {
    const value = (await fn.apply(this, args)) as Awaited<R>
    const tags = tagsFor(args)
    await region.set(keyFor(args), value, tags !== undefined ? { tags } : undefined)
    return value
  }
  cached.key = (...args) => keyFor(args)
  Object.defineProperty(cached, 'original', { value: fn })
  remember(cached, cached)
  return cached
}

export function cacheMultiOnArguments<A, R>(
  region: CacheRegion,
  fn: (...args: A[]) => unknown,
  options: CacheMultiOnArgumentsOptions<R> = {},
): CachedMultiFunction<A, R, never> {
  assertFunction(fn, 'cacheMultiOnArguments')
  rejectUnknown(options, CACHE_MULTI_ON_ARGUMENTS_OPTIONS, 'cacheMultiOnArguments()')
  const generate = (options.keyGenerator ?? region.multiKeyGenerator)(options.namespace, fn as never, {
    toStr: options.toStr,
  })
  const expiration = expirationResolver(options.expirationTime)
  const shouldCache = options.shouldCache
  const asDict = options.asDict === true

  const keysFor = (args: A[]): string[] => {
    const keys = generate(...args)
    if (!Array.isArray(keys) || keys.length !== args.length) {
      throw new ValidationError('the multi key generator must return one key per argument')
    }
    return keys
  }

  /** Reads a dict-like result for one argument; NO_VALUE when the function left it out. */
  const pick = (result: unknown, arg: A): unknown => {
    if (result instanceof Map) return result.has(arg) ? result.get(arg) : NO_VALUE
    if (result !== null && typeof result === 'object') {
      const dict = result as Record<string, unknown>
      const name = String(arg)
      return Object.prototype.hasOwnProperty.call(dict, name) ? dict[name] : NO_VALUE
    }
    throw new ValidationError(
      `cacheMultiOnArguments({ asDict: true }): the function must return a Map or an object; got ${describeValue(result)}`,
    )
  }

  // Whether the function returns a Map (true) or an object, as last seen; set by `.set()` until the function ran.
  let lastResultWasMap: boolean | undefined
  const run = async (args: A[]): Promise<unknown> => {
    const keys = keysFor(args)
    const argByKey = new Map(keys.map((key, i) => [key, args[i] as A]))
    const expirationTime = expiration()
    const creatorArgs = (toCreate: string[]) => toCreate.map((key) => argByKey.get(key) as A)
    if (!asDict) {
      return region.getOrCreateMulti<R>(keys, async (...toCreate) => (await fn(...creatorArgs(toCreate))) as R[], {
        ...(expirationTime !== undefined ? { expirationTime } : {}),
        ...(shouldCache ? { shouldCache } : {}),
        ...(options.tags !== undefined ? { tags: options.tags } : {}),
      })
    }
    let resultIsMap = lastResultWasMap === true
    const values = await region.getOrCreateMulti<unknown>(
      keys,
      async (...toCreate) => {
        const result = await fn(...creatorArgs(toCreate))
        resultIsMap = lastResultWasMap = result instanceof Map
        return toCreate.map((key) => pick(result, argByKey.get(key) as A))
      },
      {
        ...(expirationTime !== undefined ? { expirationTime } : {}),
        ...(options.tags !== undefined ? { tags: options.tags } : {}),
        // Arguments the function left out are not cached.
        shouldCache: (value) => value !== NO_VALUE && (shouldCache === undefined || shouldCache(value as R)),
      },
    )
    const found = args.map((arg, i) => [arg, values[i]] as const).filter(([, value]) => value !== NO_VALUE)
    return resultIsMap ? new Map(found) : Object.fromEntries(found.map(([arg, value]) => [String(arg), value]))
  }

  const cached = ((...args: A[]) => run(args)) as CachedMultiFunction<A, R, never>
  Object.defineProperty(cached, 'name', { value: fn.name })
  cached.invalidate = (...args) => region.deleteMulti(keysFor(args))
  cached.set = (values) => {
    if (asDict && lastResultWasMap === undefined) lastResultWasMap = values instanceof Map
    const pairs: Array<[A, R]> =
      values instanceof Map ? [...values] : (Object.entries(values) as unknown as Array<[A, R]>)
    const keys = keysFor(pairs.map(([arg]) => arg))
    return region.setMulti(new Map(keys.map((key, i) => [key, pairs[i]![1]])))
  }
  cached.get = (...args) => {
    const expirationTime = expiration()
    return region.getMulti<R>(keysFor(args), expirationTime !== undefined ? { expirationTime } : undefined)
  }
  cached.refresh = async (...args) => {
    const keys = keysFor(args)
    const result = await fn(...args)
    if (asDict) {
      if (result !== null && typeof result === 'object') lastResultWasMap = result instanceof Map
      const entries = args
        .map((arg, i) => [keys[i]!, pick(result, arg)] as const)
        .filter(([, value]) => value !== NO_VALUE)
      await region.setMulti(new Map(entries))
      return result as never
    }
    if (!Array.isArray(result) || result.length !== args.length) {
      throw new ValidationError(
        `cacheMultiOnArguments(): the function must return one value per argument (${args.length})`,
      )
    }
    await region.setMulti(new Map(keys.map((key, i) => [key, result[i]])))
    return result as never
  }
  cached.keys = (...args) => keysFor(args)
  Object.defineProperty(cached, 'original', { value: fn })
  return cached
}

/**
 * What `region.cached()` returns: a method decorator for both kinds TypeScript compiles. The first signature is a
 * TC39 (stage 3) decorator, the default since TypeScript 5; the second is a legacy one, for projects compiled with
 * `experimentalDecorators` (NestJS, and most code written before TypeScript 5). TypeScript checks a decorator
 * against the signature of the kind the project uses, so one `@region.cached()` type-checks under both.
 */
export interface CachedMethodDecorator<R> {
  <This, Args extends unknown[]>(
    method: (this: This, ...args: Args) => R,
    context: ClassMethodDecoratorContext<This, (this: This, ...args: Args) => R>,
  ): CachedFunction<Args, R, This>
  <Args extends unknown[]>(
    target: object,
    name: string | symbol,
    descriptor: TypedPropertyDescriptor<(...args: Args) => R>,
  ): TypedPropertyDescriptor<(...args: Args) => R>
}

/**
 * Every function `cacheOnArguments` made, and every per-instance view of a decorated method, mapped to the cached
 * function behind it: how `cachedMethod()` tells a decorated method from any other.
 */
const cachedFunctions = new WeakMap<object, CachedFunction<never[], unknown, unknown>>()

function remember<Args extends unknown[], R, This>(
  fn: CachedFunction<Args, R, This>,
  cached: CachedFunction<Args, R, This>,
): void {
  cachedFunctions.set(fn, cached as unknown as CachedFunction<never[], unknown, unknown>)
}

/** The names of `T`'s methods. */
export type MethodNames<T> = {
  [Name in keyof T]-?: T[Name] extends (...args: never[]) => unknown ? Name : never
}[keyof T]

/** The helpers of the method `T[Name]` once cached, bound to its instance: what `cachedMethod()` returns. */
export type CachedMethodOf<T, Name extends keyof T> = T[Name] extends (...args: infer Args) => infer R
  ? CachedFunction<Args, R>
  : never

/**
 * The helpers of a method decorated with `@region.cached()`, typed, and bound to `target` (an instance, or the
 * class for a static method): `cachedMethod(service, 'find').invalidate(1)`, `.refresh(1)` (runs the method on
 * `target`), `.set(value, 1)`, `.get(1)`, `.key(1)`, `.original`. TypeScript cannot change the declared type of a
 * decorated method, so `service.find.invalidate` is a type error even though it works at run time; this is the typed
 * way. A method that is not cached is a `ValidationError`.
 */
export function cachedMethod<T extends object, Name extends MethodNames<T>>(
  target: T,
  name: Name,
): CachedMethodOf<T, Name> {
  const holder: unknown = target
  const method: unknown =
    holder === null || (typeof holder !== 'object' && typeof holder !== 'function') ? undefined : target[name]
  const cached = typeof method === 'function' ? cachedFunctions.get(method) : undefined
  if (cached === undefined) {
    const owner =
      typeof holder === 'function' ? holder.name : ((holder as object | null)?.constructor?.name ?? String(holder))
    throw new ValidationError(
      `cachedMethod(): ${owner}.${String(name)} is not a method decorated with @region.cached(); got ${describeValue(method)}`,
    )
  }
  return bindCached(cached, target as unknown) as unknown as CachedMethodOf<T, Name>
}

/** `region.cached()`: one decorator that is a TC39 or a legacy (`experimentalDecorators`) one, as it is called. */
export function methodDecorator<R>(
  region: CacheRegion,
  options?: CacheOnArgumentsOptions<Awaited<R>, never[]>,
): CachedMethodDecorator<R> {
  function cachedDecorator(target: unknown, contextOrName: unknown, descriptor?: PropertyDescriptor): unknown {
    if (typeof contextOrName === 'object' && contextOrName !== null) {
      return decorateTc39(region, options, target, contextOrName as DecoratorContext)
    }
    if ((typeof contextOrName === 'string' || typeof contextOrName === 'symbol') && descriptor !== undefined) {
      return decorateLegacy(region, options, contextOrName, descriptor)
    }
    throw new ValidationError(
      `@region.cached() decorates class methods; got ${describeValue(contextOrName)} as its second argument. Use region.cacheOnArguments(fn) for plain functions`,
    )
  }
  return cachedDecorator as CachedMethodDecorator<R>
}

/** TC39: the decorated method becomes the cached function; each instance gets a view of it bound to itself. */
function decorateTc39<R>(
  region: CacheRegion,
  options: CacheOnArgumentsOptions<Awaited<R>, never[]> | undefined,
  target: unknown,
  context: DecoratorContext,
): unknown {
  if (context.kind !== 'method' || typeof target !== 'function') {
    throw new ValidationError(
      `@region.cached() decorates class methods, not a ${context.kind}; use region.cacheOnArguments(fn) for plain functions`,
    )
  }
  const methodContext = context as ClassMethodDecoratorContext
  const cached = cacheOnArguments(
    region,
    target as (...args: unknown[]) => R,
    options as CacheOnArgumentsOptions<Awaited<R>>,
  )
  if (!methodContext.private) {
    // `instance.method.refresh(...)` must run the method on `instance`, not on the function it is read from: each
    // instance gets a view of the cached method bound to it (unless a subclass overrides the method).
    methodContext.addInitializer(function (this: unknown) {
      const holder = this as Record<PropertyKey, unknown>
      if (holder[methodContext.name] !== cached) return
      Object.defineProperty(holder, methodContext.name, {
        value: bindCached(cached, this),
        writable: true,
        configurable: true,
        enumerable: false,
      })
    })
  }
  return cached
}

/**
 * Legacy (`experimentalDecorators`, NestJS): the descriptor's function becomes the cached function, a plain
 * function as frameworks expect (Nest's route decorators put metadata on `descriptor.value`). Legacy decorators
 * see no instance, so the method cannot be bound per instance: `instance.method.refresh()` would not know its
 * `this`, and says so; `cachedMethod(instance, 'method').refresh()` does.
 */
function decorateLegacy<R>(
  region: CacheRegion,
  options: CacheOnArgumentsOptions<Awaited<R>, never[]> | undefined,
  name: string | symbol,
  descriptor: PropertyDescriptor,
): PropertyDescriptor {
  const method: unknown = descriptor.value
  if (typeof method !== 'function') {
    throw new ValidationError(
      `@region.cached() decorates class methods; ${String(name)} is ${descriptor.get || descriptor.set ? 'an accessor' : describeValue(method)}`,
    )
  }
  const cached = cacheOnArguments(
    region,
    method as (...args: unknown[]) => R,
    options as CacheOnArgumentsOptions<Awaited<R>>,
  )
  const refresh = cached.refresh
  cached.refresh = function (this: unknown, ...args: unknown[]) {
    if (this === cached || this === undefined) {
      throw new ValidationError(
        `${String(name)}.refresh(): a method decorated with legacy decorators does not know its instance; call cachedMethod(instance, '${String(name)}').refresh(...)`,
      )
    }
    return refresh.apply(this, args)
  }
  copyReflectMetadata(method, cached)
  return { ...descriptor, value: cached }
}

/** What `reflect-metadata` (which NestJS loads) adds to `Reflect`. */
interface ReflectMetadata {
  getOwnMetadataKeys(target: object): unknown[]
  getOwnMetadata(key: unknown, target: object): unknown
  defineMetadata(key: unknown, value: unknown, target: object): void
}

/**
 * Decorators applied before this one (written below it) may have put metadata on the method itself; the cached
 * function that replaces it carries it on, so `@Get() @region.cached()` and `@region.cached() @Get()` are alike.
 */
function copyReflectMetadata(from: object, to: object): void {
  const api = Reflect as unknown as Partial<ReflectMetadata>
  if (typeof api.getOwnMetadataKeys !== 'function' || typeof api.getOwnMetadata !== 'function') return
  for (const key of api.getOwnMetadataKeys(from)) api.defineMetadata!(key, api.getOwnMetadata(key, from), to)
}

function bindCached<Args extends unknown[], R, This>(
  cached: CachedFunction<Args, R, This>,
  instance: This,
): CachedFunction<Args, R, This> {
  const bound = ((...args: Args) => cached.apply(instance, args)) as CachedFunction<Args, R, This>
  Object.defineProperty(bound, 'name', { value: cached.name })
  bound.invalidate = cached.invalidate
  bound.set = cached.set
  bound.get = cached.get
  bound.key = cached.key
  bound.refresh = (...args: Args) => cached.refresh.apply(instance, args)
  Object.defineProperty(bound, 'original', { value: cached.original })
  remember(bound, cached)
  return bound
}
