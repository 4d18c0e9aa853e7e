export { backgroundRunner, type AsyncCreationRunner } from './async-runner.js'
export { DogpileLock, type Call, type LockHost } from './dogpile.js'
export { Flight, FlightTable, type FlightOutcome } from './flight.js'
export { getOrCreateMulti, type MultiRequest } from './multi.js'
