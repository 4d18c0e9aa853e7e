/**
 * The Lua scripts of the Redis backend. Each runs atomically on the server; every key it touches is passed in
 * KEYS, so on a cluster a script runs on the node that owns them.
 */
import { createHash } from 'node:crypto'

/** A Lua script run by EVALSHA, falling back to EVAL when the server does not know it (after a restart). */
export interface Script {
  readonly lua: string
  readonly sha: string
}

const script = (lua: string): Script => ({ lua, sha: createHash('sha1').update(lua).digest('hex') })

/** What `ACQUIRE` returns when it took the lock. */
export const ACQUIRED = -3

/** SET NX PX, or the holder's remaining time when the lock is taken (-1: no expiry); `ACQUIRED` when taken. */
export const ACQUIRE = script(`if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return -3 end
return redis.call('pttl', KEYS[1])`)

/** Compare-and-delete: frees the lock only if it still holds our token, then tells the waiters. */
export const RELEASE = script(`if redis.call('get', KEYS[1]) == ARGV[1] then
  redis.call('del', KEYS[1])
  redis.call('publish', ARGV[2], ARGV[3])
  return 1
end
return 0`)

/**
 * Max-merges one invalidation mark into the region's hash and publishes the merged marks. Times travel as the
 * strings JavaScript printed (Lua's tostring would round them to 14 digits).
 */
export const INVALIDATE = script(`local current = redis.call('hget', KEYS[1], ARGV[1])
local known = current and tonumber(current)
if (not known) or tonumber(ARGV[2]) > known then redis.call('hset', KEYS[1], ARGV[1], ARGV[2]) end
local hard = redis.call('hget', KEYS[1], 'hard') or '0'
local soft = redis.call('hget', KEYS[1], 'soft') or '0'
if ARGV[3] ~= '' then redis.call('publish', ARGV[3], hard .. ' ' .. soft) end
return {hard, soft}`)

/** INCRBY, then (re)sets the counter's expiry: a counter lives `ttl` after its last increment. */
export const INCREMENT = script(`local value = redis.call('incrby', KEYS[1], ARGV[1])
if ARGV[2] ~= '' then redis.call('pexpire', KEYS[1], ARGV[2]) end
return value`)

/**
 * Max-merges tag marks. KEYS: the tags' keys; ARGV: the marks' lifetime after their latest time in ms (-1: no
 * expiry), the caller's clock (ms), the channel to publish on ('' for none), then per key its tag, hard and soft
 * time ('0': unchanged). Each key holds "<hard>,<soft>" (times as JavaScript printed them), expiring when the
 * latest of its times is `lifetime` old (never sooner than it already would). Returns the merged marks in key
 * order, and publishes them as a JSON array [tag, marks, tag, marks, ...].
 */
export const MERGE_TAGS = script(`local ttl = tonumber(ARGV[1])
local now = tonumber(ARGV[2])
local merged = {}
local message = {}
for i, key in ipairs(KEYS) do
  local tag = ARGV[3 * i + 1]
  local hard = ARGV[3 * i + 2]
  local soft = ARGV[3 * i + 3]
  local current = redis.call('get', key)
  if current then
    local comma = string.find(current, ',', 1, true)
    if comma then
      local storedHard = string.sub(current, 1, comma - 1)
      local storedSoft = string.sub(current, comma + 1)
      if (tonumber(storedHard) or 0) >= tonumber(hard) then hard = storedHard end
      if (tonumber(storedSoft) or 0) >= tonumber(soft) then soft = storedSoft end
    end
  end
  local value = hard .. ',' .. soft
  if value ~= current then
    local pttl = redis.call('pttl', key)
    if ttl < 0 or pttl == -1 then
      redis.call('set', key, value)
    else
      local px = math.max(tonumber(hard), tonumber(soft)) + ttl - now
      if pttl > px then px = pttl end
      if px < 1 then px = 1 end
      redis.call('set', key, value, 'PX', string.format('%d', math.ceil(px)))
    end
  end
  merged[i] = value
  message[2 * i - 1] = tag
  message[2 * i] = value
end
if ARGV[3] ~= '' then redis.call('publish', ARGV[3], cjson.encode(message)) end
return merged`)
