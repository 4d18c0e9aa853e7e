/**
 * `@corral/core/testing`: the suites a backend must pass, as Vitest tests (vitest is an optional peer dependency of
 * `@corral/core`, needed only here).
 *
 * - `describeBackendConformance(name, options)`: what every `CacheBackend` must do, in one process; with `faults`,
 *   how a distributed backend behaves when its server dies, freezes or comes back.
 * - `describeMultiProcess(name, options)`: the dogpile lock, invalidation and tags across real processes, for
 *   backends shared by several processes.
 * - `describeFaultSuite(name, options)`: 4 processes under load while the server dies, freezes and comes back, lock
 *   holders die or freeze, creators hang or throw and corrupt bytes appear under keys in use; a figure per scenario.
 */
export {
  describeBackendConformance,
  eventually,
  type ConformanceInstance,
  type ConformanceOptions,
  type ControlledServer,
  type FaultOptions,
  type ServerControl,
} from './conformance.js'
export { describeMultiProcess, type MultiProcessOptions } from './multiprocess.js'
export { describeFaultSuite, type FaultSuiteOptions, type FaultSuiteServer, type ScenarioFigures } from './faults.js'
export { measureWaiterLatency, reportFigure } from './measure.js'
