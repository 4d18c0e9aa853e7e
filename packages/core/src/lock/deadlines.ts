/**
 * The hard deadlines of regenerations: one timer per duration instead of one per regeneration.
 *
 * Every regeneration is bounded (its `hardTimeout`, else the backend's lock timeout), and almost all of them end
 * long before their bound: a `setTimeout` each, armed and cleared on every miss, cost more than the rest of the
 * lock's bookkeeping (a Timeout object, the timer list, libuv's clock). Deadlines of one duration expire in the
 * order they were set, so they are kept in a list with one timer armed for the first; a regeneration that ends
 * unlinks its entry in O(1) and leaves the timer alone. When the timer fires it expires what is due and re-arms
 * for the next, if any.
 *
 * Timers are unref'd (a pending deadline does not keep the process alive, as before). Times come from
 * `performance.now()` (monotonic: a step of the wall clock moves no deadline). Each list keeps the `setTimeout` and
 * `performance` it was made with, and lists are kept apart per `setTimeout`, so deadlines set while fake timers are
 * installed are driven by the fake clock, and ones set before by the real one.
 */

/** One regeneration's deadline: `cancel()` when it ends before it. */
export class Deadline {
  /** @internal */ next: Deadline | undefined = undefined
  /** @internal */ previous: Deadline | undefined = undefined
  /** @internal */ list: DeadlineList | undefined

  constructor(
    /** @internal */ readonly due: number,
    /** @internal */ readonly expire: () => void,
    list: DeadlineList,
  ) {
    this.list = list
  }

  /** The regeneration ended in time: the deadline will not expire. Idempotent. */
  cancel(): void {
    this.list?.remove(this)
  }
}

type SetTimeout = (callback: () => void, ms: number) => unknown

/** The lists, per `setTimeout` function (real or fake), then per duration in milliseconds. */
const listsByTimer = new WeakMap<SetTimeout, Map<number, DeadlineList>>()

/**
 * Calls `expire` in `ms` milliseconds unless the returned deadline is cancelled first. `expire` should not throw:
 * a throw is reported as an uncaught exception, as a throwing timer callback's would be.
 */
export function deadlineIn(ms: number, expire: () => void): Deadline {
  const setTimer = globalThis.setTimeout as unknown as SetTimeout
  let lists = listsByTimer.get(setTimer)
  if (lists === undefined) listsByTimer.set(setTimer, (lists = new Map()))
  let list = lists.get(ms)
  if (list === undefined) lists.set(ms, (list = new DeadlineList(ms, setTimer, globalThis.performance, lists)))
  return list.add(expire)
}

class DeadlineList {
  #first: Deadline | undefined
  #last: Deadline | undefined
  /** whether a timer is armed (for the first deadline, or an earlier one since cancelled) */
  #armed = false

  constructor(
    private readonly ms: number,
    private readonly setTimer: SetTimeout,
    private readonly clock: { now(): number },
    private readonly lists: Map<number, DeadlineList>,
  ) {}

  add(expire: () => void): Deadline {
    const deadline = new Deadline(this.clock.now() + this.ms, expire, this)
    const last = this.#last
    if (last === undefined) this.#first = deadline
    else {
      last.next = deadline
      deadline.previous = last
    }
    this.#last = deadline
    if (!this.#armed) this.#arm(deadline.due)
    return deadline
  }

  remove(deadline: Deadline): void {
    const { previous, next } = deadline
    if (previous === undefined) this.#first = next
    else previous.next = next
    if (next === undefined) this.#last = previous
    else next.previous = previous
    deadline.previous = deadline.next = deadline.list = undefined
  }

  #arm(due: number): void {
    this.#armed = true
    // A timer may fire up to a millisecond early by this clock (libuv counts whole milliseconds): at least 1 ms.
    const timer = this.setTimer(() => this.#fire(), Math.max(1, Math.ceil(due - this.clock.now()))) as {
      unref?: () => void
    }
    timer.unref?.()
  }

  #fire(): void {
    this.#armed = false
    const now = this.clock.now()
    let first = this.#first
    while (first !== undefined && first.due <= now) {
      this.remove(first)
      try {
        first.expire()
      } catch (error) {
        // Surfaced as a throwing timer callback would be, without stranding the deadlines after it.
        queueMicrotask(() => {
          throw error
        })
      }
      first = this.#first
    }
    if (first !== undefined) this.#arm(first.due)
    else if (this.lists.get(this.ms) === this) this.lists.delete(this.ms)
  }
}
