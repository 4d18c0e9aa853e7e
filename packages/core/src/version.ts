/**
 * This package's version, as the OpenTelemetry tracer and meter report it (`instrumentationScope.version`). A
 * constant rather than a read of package.json, so bundlers and every module format see the same value;
 * version.test.ts keeps it equal to package.json's.
 */
export const VERSION = '0.1.0'
