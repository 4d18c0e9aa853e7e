import fs from 'node:fs'
import path from 'node:path'

/**
 * Wake-ups between the processes of one machine, through a directory every process watches (`fs.watch`: inotify
 * on Linux, FSEvents/kqueue elsewhere). An event names a file of that directory, and each process calls the
 * listeners it registered for that name. Events cost nothing while nobody changes the directory.
 *
 * Two patterns use it:
 * - **Lock releases** (`arm` / `fire`): a process that starts waiting for a lock creates the lock's file; the holder
 *   removes it when it releases. The removal is the wake-up, and it happens only when someone waits (an
 *   uncontended release costs one `unlink` that finds nothing). A waiter registers its listener before it creates
 *   the file and tries the lock after, so a release cannot fall between the two unseen: either the release came
 *   first (the waiter's try sees the lock free) or its removal is an event the waiter hears.
 * - **Changes** (`toggle`): a process that changed something others mirror (invalidation marks) creates the file,
 *   or removes it when it exists; either is an event.
 *
 * Events can be lost (inotify's queue overflows, the watcher fails): every user also polls, slowly.
 */
export class Signals {
  readonly #listeners = new Map<string, Set<() => void>>()
  #watcher: fs.FSWatcher | undefined
  #closed = false

  constructor(
    readonly directory: string,
    private readonly onError: (error: unknown) => void,
  ) {}

  /** Calls `listener` whenever the file `name` is created, removed or changed; returns the unsubscribe. */
  listen(name: string, listener: () => void): () => void {
    this.#ensureWatcher()
    let set = this.#listeners.get(name)
    if (!set) this.#listeners.set(name, (set = new Set()))
    set.add(listener)
    const listeners = set
    return () => {
      listeners.delete(listener)
      if (listeners.size === 0 && this.#listeners.get(name) === listeners) this.#listeners.delete(name)
    }
  }

  /** Creates the file `name` if it is absent: "someone waits for `name`". */
  arm(name: string): void {
    try {
      fs.closeSync(fs.openSync(path.join(this.directory, name), 'wx'))
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') this.onError(error)
    }
  }

  /** Removes the file `name` if it exists, waking whoever armed it. */
  fire(name: string): void {
    const file = path.join(this.directory, name)
    // Nobody waits, most of the time: a look is far cheaper than a failed unlink (which builds an exception). A
    // waiter that arms the file right after the look tries the lock after that, and finds it free.
    if (!fs.existsSync(file)) return
    try {
      fs.unlinkSync(file)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') this.onError(error)
    }
  }

  /** Creates or removes the file `name`: either way, every listener of `name` hears it. */
  toggle(name: string): void {
    const file = path.join(this.directory, name)
    try {
      fs.unlinkSync(file)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') return this.onError(error)
      this.arm(name)
    }
  }

  #ensureWatcher(): void {
    if (this.#watcher || this.#closed) return
    try {
      // Not persistent: a process with nothing else to do may exit while it listens.
      const watcher = fs.watch(this.directory, { persistent: false }, (_event, name) => {
        if (name === null) {
          // The platform did not say which file changed: wake everyone (they re-check and wait again).
          for (const set of this.#listeners.values()) for (const listener of [...set]) listener()
          return
        }
        const set = this.#listeners.get(String(name))
        if (set) for (const listener of [...set]) listener()
      })
      watcher.on('error', (error) => {
        // Listeners fall back to polling; the next listen() tries to watch again.
        this.onError(error)
        watcher.close()
        if (this.#watcher === watcher) this.#watcher = undefined
      })
      this.#watcher = watcher
    } catch (error) {
      this.onError(error)
    }
  }

  close(): void {
    this.#closed = true
    this.#watcher?.close()
    this.#watcher = undefined
    this.#listeners.clear()
  }
}
