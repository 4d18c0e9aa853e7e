/**
 * Keeps a slow answer from overwriting a newer change in the L1.
 *
 * A read of the backend that started before another process changed the key can answer after the message about
 * that change was handled here (the answer and the message come over different connections, or from different
 * servers when memcached has a Redis bus): copying that answer into the L1 would keep the old value for good. The
 * same holds for a write of this process that raced with another one. So every backend operation notes the
 * generation when it starts (`open`), every change to a key (a message, or a write of this process) moves the
 * key's generation forward (`touch`), and an operation may copy what it got into the L1 only if its key was not
 * touched since it started (`changedSince`).
 *
 * Memory stays bounded: touched keys are remembered only while some operation is in flight, at most `capacity` of
 * them; when older ones are forgotten, every operation that started before them is treated as overtaken (one
 * L1 copy fewer, never a stale one).
 */
export class ChangeFence {
  #generation = 0
  /** operations that started before this generation are overtaken, whatever their key */
  #floor = 0
  readonly #touched = new Map<string, number>()
  #inFlight = 0

  constructor(private readonly capacity = 10_000) {}

  /** A backend operation starts: its generation, for `changedSince`. Pair with `close`. */
  open(): number {
    this.#inFlight++
    return this.#generation
  }

  /** A backend operation ended (after its last `changedSince`). */
  close(): void {
    if (--this.#inFlight === 0) this.#touched.clear()
  }

  /** `key` changed: operations on it in flight now must not copy what they got. */
  touch(key: string): void {
    const generation = ++this.#generation
    if (this.#inFlight === 0) return
    // Re-inserting keeps the map in generation order: its first entry is the oldest.
    this.#touched.delete(key)
    this.#touched.set(key, generation)
    if (this.#touched.size > this.capacity) {
      const [oldest, at] = this.#touched.entries().next().value as [string, number]
      this.#touched.delete(oldest)
      this.#floor = at
    }
  }

  /** Everything may have changed (the bus lost messages): no operation in flight may copy what it got. */
  touchAll(): void {
    this.#floor = ++this.#generation
    this.#touched.clear()
  }

  /** Whether `key` changed after an operation that started at `since` (so its answer may be older than the change). */
  changedSince(key: string, since: number): boolean {
    return since < this.#floor || (this.#touched.get(key) ?? 0) > since
  }
}
