import type { BackendContext, L1Bus } from '../api.js'
import type { RedisBackend } from './backend.js'

/**
 * The L1 bus on Redis pub/sub: a topic is the channel `<keyPrefix>corral:l1:<topic>`, listened to on the backend's one
 * subscriber connection (the one its lock waiters and invalidators use) and published to with its command client.
 *
 * Redis delivers a message only to the connections subscribed at that moment: while the subscriber is away,
 * messages are lost. The backend tells the bus when its subscriber drops and when it is subscribed again, and the bus
 * passes that on to its listeners, which must stop trusting what they hold in between.
 *
 * A bus that rides on a backend the region uses never closes it; one made for a memcached region from a URL
 * (`l1: { bus: 'redis://...' }`) owns its backend and closes it.
 */
export class RedisBus implements L1Bus {
  readonly #listeners = new Map<string, () => void>()

  constructor(
    readonly backend: RedisBackend,
    private readonly ownsBackend = false,
  ) {}

  attach(context: BackendContext): void {
    // A backend of the bus's own reports its connection failures to the region; a shared one already does.
    if (this.ownsBackend) this.backend.attach(context)
  }

  channel(topic: string): string {
    return `${this.backend.keyPrefix}corral:l1:${topic}`
  }

  async listen(
    topic: string,
    onMessage: (message: string) => void,
    onConnection: (connected: boolean) => void,
  ): Promise<void> {
    this.#listeners.get(topic)?.()
    const stopWatching = this.backend.watchSubscriber(onConnection)
    this.#listeners.set(topic, stopWatching)
    try {
      await this.backend.subscribe(this.channel(topic), onMessage)
    } catch (error) {
      // The channel stays registered: the backend subscribes it again, and says so, once its subscriber is ready.
      onConnection(false)
      throw error
    }
  }

  async unlisten(topic: string): Promise<void> {
    this.#listeners.get(topic)?.()
    this.#listeners.delete(topic)
    await this.backend.unsubscribe(this.channel(topic))
  }

  async publish(topic: string, message: string): Promise<void> {
    const channel = this.channel(topic)
    await this.backend.run(() => this.backend.client.publish(channel, message))
  }

  async close(): Promise<void> {
    await Promise.all([...this.#listeners.keys()].map((topic) => this.unlisten(topic)))
    if (this.ownsBackend) await this.backend.close()
  }
}
