/**
 * The Lua scripts of the Redis backend. Each runs atomically on the server; every key it touches is passed in
 * KEYS, so on a cluster a script runs on the node that owns them.
 */
import { createHash } from 'node:crypto'
import { FORMAT_VERSION } from '../../cached-value.js'

/** A Lua script run by EVALSHA, falling back to EVAL when the server does not know it (after a restart). */
export interface Script {
  readonly lua: string
  readonly sha: string
}

const script = (lua: string): Script => ({ lua, sha: createHash('sha1').update(lua).digest('hex') })

/**
 * The fence of a store, as a Lua function: whether the value under `key` was created after `since` (so it must not
 * be overwritten). The creation time is read from the stored envelope's header (`c<version>:<ct>:`, see
 * `encodeCachedValue`) with GETRANGE, without reading the payload. A value whose header is not Corral's, a key of
 * another type, and a creation time later than `believable` (a writer whose clock runs ahead: the region does not
 * believe it either) do not count as newer.
 */
const NEWER_THAN = `local function newer_than(key, since, believable)
  local head = redis.pcall('getrange', key, 0, 63)
  if type(head) ~= 'string' then return false end
  local ct = tonumber(string.match(head, '^c${FORMAT_VERSION}:([^:]+):'))
  return ct ~= nil and ct > tonumber(since) and ct <= tonumber(believable)
end
`

/**
 * Takes the lock and reads the value in one step. KEYS: the lock, the value. ARGV: the lock's value
 * (`<token> <traceparent or ->`), the lock timeout (ms), and '1' when the caller is going to wait.
 *
 * Taken: `{1, value or nil}`. Held: `{0, its remaining ms, its value}`. A lock without an expiry (written by
 * someone else, or by hand) is given one of `lockTimeout`, and so is one in a format that is not Corral's whose
 * expiry is further away: a foreign or corrupt lock key blocks for at most one lock timeout. A caller that is
 * going to wait marks the holder's lock with a trailing ` w`, so its release publishes (see `RELEASE`): releases
 * nobody waits for publish nothing.
 */
export const ACQUIRE = script(`if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local value = redis.pcall('get', KEYS[2])
  if type(value) ~= 'string' then value = false end
  return {1, value}
end
local holder = redis.pcall('get', KEYS[1])
if type(holder) ~= 'string' then holder = false end
local ttl = redis.call('pttl', KEYS[1])
local timeout = tonumber(ARGV[2])
local corral = holder and string.find(holder, '^%x+ ') ~= nil
if ttl < 0 or ((not corral) and ttl > timeout) then
  redis.call('pexpire', KEYS[1], timeout)
  ttl = timeout
end
if corral and ARGV[3] == '1' and string.sub(holder, -2) ~= ' w' then
  redis.call('set', KEYS[1], holder .. ' w', 'KEEPTTL')
end
return {0, ttl, holder}`)

/** What `RELEASE` returns when it stored the value (otherwise 0: released only, or -1: the lock was not ours). */
export const RELEASED_STORED = 1

/**
 * Releases the lock, first storing a value (fenced) when given one, and tells the waiters: one atomic step.
 * KEYS: the lock, the value. ARGV: our token, the release channel, the holder's traceparent (or '-'), the largest
 * value (bytes) a release message carries; to store: the value's bytes, '1', its PX ('' for none), `since` and
 * the latest creation time believed (both epoch ms).
 *
 * Nothing happens unless the lock still holds our token (-1). The value is stored unless one created after
 * `since` is there (`NEWER_THAN`). The lock is deleted; if a waiter marked it, the release is published on the
 * key's release channel as `<status> <traceparent or ->`, followed by a newline and the value's bytes when the
 * status is `v`: `v` stored (the value follows), `s` stored (too large to carry: read it), `n` nothing stored.
 * Returns 1 when it stored, 0 when it only released.
 */
export const RELEASE = script(`${NEWER_THAN}local lock = redis.pcall('get', KEYS[1])
if type(lock) ~= 'string' or string.sub(lock, 1, #ARGV[1] + 1) ~= ARGV[1] .. ' ' then return -1 end
local stored = 0
if ARGV[6] == '1' and not newer_than(KEYS[2], ARGV[8], ARGV[9]) then
  if ARGV[7] == '' then redis.call('set', KEYS[2], ARGV[5]) else redis.call('set', KEYS[2], ARGV[5], 'PX', ARGV[7]) end
  stored = 1
end
redis.call('del', KEYS[1])
if string.sub(lock, -2) == ' w' then
  local message
  if stored == 0 then message = 'n ' .. ARGV[3]
  elseif #ARGV[5] <= tonumber(ARGV[4]) then message = 'v ' .. ARGV[3] .. '\\n' .. ARGV[5]
  else message = 's ' .. ARGV[3] end
  redis.call('publish', ARGV[2], message)
end
return stored`)

/**
 * Stores a value unless one created after `since` is there, without a lock. KEYS: the value. ARGV: its bytes, its
 * PX ('' for none), `since`, the latest creation time believed. Returns 1 when it stored.
 */
export const SET_IF_NOT_NEWER = script(`${NEWER_THAN}if newer_than(KEYS[1], ARGV[3], ARGV[4]) then return 0 end
if ARGV[2] == '' then redis.call('set', KEYS[1], ARGV[1]) else redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
return 1`)

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
