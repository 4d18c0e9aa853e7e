/**
 * `@corral/core/file`: the file backend (LMDB through the `lmdb` package): a cache that persists in a directory and
 * is shared, with its dogpile lock, by the processes of one machine. Its own entry point, so that the types of
 * `@corral/core` never refer to lmdb. `configure('file', ...)` works without importing it.
 */
export { FileBackend, type FileBackendOptions } from './backend.js'
