/**
 * The stampede episodes of this process, from the region events, as the fleet needs them.
 *
 * An episode is the callers of one key that did not run the creator (`coalesced` events, both modes) and the
 * regeneration they were coalesced onto when it ran here. What a process sees of a stampede:
 *
 * - the creator's process: its own callers join the flight while the creator runs (`coalesced` at join time), then
 *   the creator ends (`regenerate`, with its duration): an episode with a regeneration, the creator's side;
 * - every other process: its first caller waits for the distributed lock while the others of that process join it
 *   (`coalesced`), then finds the value the creator stored (`coalesced` again): an episode without a regeneration,
 *   a waiting side.
 *
 * Joining: a `coalesced` event joins the key's latest episode while that episode has no regeneration yet and its
 * last caller is at most `EPISODE_GAP_MS` old; a `regenerate` attaches to the key's latest episode when their times
 * overlap (within `MATCH_SLACK_MS`). A regeneration nobody was coalesced onto in this process is only remembered
 * (the last `MAX_REGENERATIONS`, not published): this process cannot know whether callers elsewhere waited for it,
 * until it reads the fleet's waiting episodes and `claim`s the ones its regeneration explains (README: "Fleet").
 *
 * Bounded: at most `MAX_EPISODES` episodes are kept, the oldest dropped first.
 */
import type { RegionEventListener, RegionRegistry } from '@corral/core'
import { boundedKey, type PublishedEpisode } from './snapshot.js'

export const EPISODE_GAP_MS = 10_000
export const MATCH_SLACK_MS = 1000
export const MAX_EPISODES = 200
const MAX_REGENERATIONS = 256

type Regeneration = NonNullable<PublishedEpisode['regeneration']>

interface Episode extends PublishedEpisode {
  id: string
}

export class EpisodeLog {
  private readonly episodes: Episode[] = []
  private readonly latest = new Map<string, Episode>()
  /**
   * Regenerations no local caller was coalesced onto (insertion order: oldest first), by region and published
   * (bounded) key, since that is the key the waits other processes publish carry. `id` is the episode's own.
   */
  private readonly unclaimed = new Map<string, Regeneration & { id: string; region: string; key: string }>()
  private readonly onCoalesced: RegionEventListener<'coalesced'>
  private readonly onRegenerate: RegionEventListener<'regenerate'>
  private attached: RegionRegistry | undefined

  constructor(private readonly clock: () => number = Date.now) {
    this.onCoalesced = ({ region, key }) => this.coalesced(region, key, this.clock())
    this.onRegenerate = ({ region, keys, duration, outcome }) => {
      const at = this.clock()
      for (const key of keys) this.regenerated(region, key, at, duration, outcome)
    }
  }

  /** Listens to `registry`'s events (both are on the miss path only: a hit costs nothing more). */
  attach(registry: RegionRegistry): void {
    this.attached = registry
    registry.on('coalesced', this.onCoalesced)
    registry.on('regenerate', this.onRegenerate)
  }

  detach(): void {
    this.attached?.off('coalesced', this.onCoalesced)
    this.attached?.off('regenerate', this.onRegenerate)
    this.attached = undefined
  }

  coalesced(region: string, key: string, at: number): void {
    const id = episodeId(region, key)
    const episode = this.latest.get(id)
    if (episode && episode.regeneration === null && at - episode.endedAt <= EPISODE_GAP_MS) {
      episode.coalesced++
      episode.endedAt = Math.max(episode.endedAt, at)
      return
    }
    this.add({ id, region, key: boundedKey(key), startedAt: at, endedAt: at, coalesced: 1, regeneration: null })
  }

  regenerated(region: string, key: string, at: number, durationSeconds: number, outcome: 'success' | 'error'): void {
    const id = episodeId(region, key)
    const episode = this.latest.get(id)
    const startedAt = Math.round(at - durationSeconds * 1000)
    const regeneration = { startedAt, at, duration: durationSeconds, outcome }
    if (episode === undefined || episode.regeneration !== null || !overlaps(episode, startedAt, at)) {
      const published = boundedKey(key)
      const claimId = episodeId(region, published)
      this.unclaimed.delete(claimId)
      this.unclaimed.set(claimId, { id, region, key: published, ...regeneration })
      if (this.unclaimed.size > MAX_REGENERATIONS) this.unclaimed.delete(this.unclaimed.keys().next().value!)
      return
    }
    episode.regeneration = regeneration
    episode.startedAt = Math.min(episode.startedAt, startedAt)
    episode.endedAt = Math.max(episode.endedAt, at)
  }

  /** Whether a regeneration that ended at or after `since` (epoch ms) is still unclaimed. */
  hasUnclaimedSince(since: number): boolean {
    for (const regeneration of this.unclaimed.values()) if (regeneration.at >= since) return true
    return false
  }

  /**
   * Another process's callers of `key` waited from `startedAt` to `endedAt`: if a regeneration of this process that
   * nobody here was coalesced onto overlaps that time, it is the creator they waited for, and becomes an episode
   * (with no coalesced caller of its own) that the fleet matches with theirs. True when claimed. `key` is as
   * published (bounded).
   */
  claim(region: string, key: string, startedAt: number, endedAt: number): boolean {
    const claimId = episodeId(region, boundedKey(key))
    const regeneration = this.unclaimed.get(claimId)
    if (regeneration === undefined || !overlaps({ startedAt, endedAt }, regeneration.startedAt, regeneration.at))
      return false
    this.unclaimed.delete(claimId)
    const { id, at, duration, outcome } = regeneration
    const run = { startedAt: regeneration.startedAt, at, duration, outcome }
    this.add({
      id,
      region,
      key: regeneration.key,
      startedAt: run.startedAt,
      endedAt: at,
      coalesced: 0,
      regeneration: run,
    })
    return true
  }

  /** The most recent episodes (by their end), newest first, as published. */
  recent(limit: number): PublishedEpisode[] {
    return [...this.episodes]
      .sort((a, b) => b.endedAt - a.endedAt)
      .slice(0, limit)
      .map(({ region, key, startedAt, endedAt, coalesced, regeneration }) => ({
        region,
        key,
        startedAt,
        endedAt,
        coalesced,
        regeneration: regeneration && { ...regeneration },
      }))
  }

  get size(): number {
    return this.episodes.length
  }

  private add(episode: Episode): void {
    this.episodes.push(episode)
    this.latest.set(episode.id, episode)
    if (this.episodes.length > MAX_EPISODES) {
      const dropped = this.episodes.shift()!
      if (this.latest.get(dropped.id) === dropped) this.latest.delete(dropped.id)
    }
  }
}

/** Whether `span` and the time from `startedAt` to `endedAt` overlap, within `MATCH_SLACK_MS`. */
function overlaps(span: { startedAt: number; endedAt: number }, startedAt: number, endedAt: number): boolean {
  return span.endedAt >= startedAt - MATCH_SLACK_MS && span.startedAt <= endedAt + MATCH_SLACK_MS
}

function episodeId(region: string, key: string): string {
  return `${region}\u0000${key}`
}
