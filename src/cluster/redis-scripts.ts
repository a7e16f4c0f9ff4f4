import { createHash } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';

/** A Lua script run by its SHA1, loaded on first use (and again after a Redis restart). */
export class RedisScript {
  readonly sha: string;

  constructor(
    readonly name: string,
    readonly source: string,
  ) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  async run(client: Redis | Cluster, keys: readonly string[], args: ReadonlyArray<string | number>): Promise<unknown> {
    try {
      return await client.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (error) {
      // NOSCRIPT: the script was not run; run it with its source (which also caches it).
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      return client.eval(this.source, keys.length, ...keys, ...args);
    }
  }
}

// Shared Lua helpers: Redis's clock in milliseconds, and ids as (ms, seq) pairs.
const LUA_HELPERS = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function parse_id(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function format_id(ms, seq)
  return string.format('%d-%d', ms, seq)
end
`;

/**
 * Appends a message to its topic's stream and publishes it, atomically, so that history and live
 * delivery agree on ids and order.
 *
 * KEYS[1] the topic's stream; KEYS[2] (single server only) the global last-id key.
 * ARGV[1] channel, ARGV[2] body, ARGV[3] history max count, ARGV[4] history max age (ms),
 * ARGV[5] '1' to publish with SPUBLISH (Redis Cluster).
 *
 * Ids are `<ms>-<seq>` with `ms` from Redis's clock, never going back, and `seq` starting at 1
 * within a millisecond (so `<ms>-0` is a position before every message of that millisecond).
 * On a single server the last id is global, which orders ids of all topics by publication; in a
 * cluster it is the stream's own last id.
 *
 * Each entry records in field `p` the id of the entry before it in the topic (or, for the first
 * entry of a new stream, the age cutoff): once older entries are trimmed, the `p` of the oldest
 * entry left says exactly up to where history is gone.
 */
export const PUBLISH_SCRIPT = new RedisScript(
  'publish',
  `${LUA_HELPERS}
local stream = KEYS[1]
local now = now_ms()
local max_age = tonumber(ARGV[4])
local cutoff = format_id(now - max_age, 0)
local last_ms, last_seq = 0, 0
local prev = cutoff
local top = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)[1]
if top then
  prev = top[1]
  last_ms, last_seq = parse_id(prev)
end
if KEYS[2] then
  local last = redis.call('GET', KEYS[2])
  if last then
    local ms, seq = parse_id(last)
    if ms > last_ms or (ms == last_ms and seq > last_seq) then last_ms, last_seq = ms, seq end
  end
end
local ms, seq = now, 1
if last_ms >= now then ms, seq = last_ms, last_seq + 1 end
local id = format_id(ms, seq)
redis.call('XADD', stream, 'MINID', '=', cutoff, id, 'm', ARGV[2], 'p', prev)
redis.call('XTRIM', stream, 'MAXLEN', '=', tonumber(ARGV[3]))
redis.call('PEXPIRE', stream, max_age)
if KEYS[2] then redis.call('SET', KEYS[2], id) end
if ARGV[5] == '1' then
  redis.call('SPUBLISH', ARGV[1], id .. ' ' .. ARGV[2])
else
  redis.call('PUBLISH', ARGV[1], id .. ' ' .. ARGV[2])
end
return id
`,
);

/**
 * Reads history after given ids, per topic.
 *
 * KEYS[1..n] streams; KEYS[n+1] (single server only) the epoch hash.
 * ARGV[1] n, ARGV[2] history max age (ms), ARGV[3..n+2] the exclusive id to read after, per stream.
 *
 * Returns { now, horizon | nil, { floor, entries } per stream }: `floor` is the id up to which the
 * stream's history may be gone (the `p` of its oldest entry, or the age cutoff when it holds
 * nothing); entries are `{ id, { field, value, ... } }`. Expired entries are trimmed first, so
 * that nothing older than the max age is replayed. An epoch hash found missing (data lost, not
 * yet noticed by any instance) is recreated with the horizon at now.
 */
export const REPLAY_SCRIPT = new RedisScript(
  'replay',
  `${LUA_HELPERS}
local n = tonumber(ARGV[1])
local now = now_ms()
local cutoff = format_id(now - tonumber(ARGV[2]), 0)
local horizon = false
if KEYS[n + 1] then
  horizon = redis.call('HGET', KEYS[n + 1], 'horizon')
  if not horizon then
    horizon = format_id(now, 0)
    redis.call('HSET', KEYS[n + 1], 'horizon', horizon)
  end
end
local out = { string.format('%d', now), horizon }
for i = 1, n do
  local stream = KEYS[i]
  redis.call('XTRIM', stream, 'MINID', '=', cutoff)
  local floor = cutoff
  local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)[1]
  if first then
    local fields = first[2]
    for j = 1, #fields, 2 do
      if fields[j] == 'p' then floor = fields[j + 1] end
    end
  end
  out[#out + 1] = { floor, redis.call('XRANGE', stream, '(' .. ARGV[2 + i], '+') }
end
return out
`,
);

/**
 * Checks the run marker when an instance (re)connects: the horizon (the id from which history is
 * complete) moves to now when the marker is missing (a new or emptied Redis) or when a server's
 * run id changed (it restarted: whatever it held since its last save may be lost).
 *
 * KEYS[1] the epoch hash; ARGV pairs of (server name, run id).
 * Returns { 'created' | 'restarted' | 'same', horizon }.
 */
export const EPOCH_SCRIPT = new RedisScript(
  'epoch',
  `${LUA_HELPERS}
local now = now_ms()
local horizon = redis.call('HGET', KEYS[1], 'horizon')
local state = 'same'
if not horizon then
  state = 'created'
else
  for i = 1, #ARGV, 2 do
    local known = redis.call('HGET', KEYS[1], 'run:' .. ARGV[i])
    if known and known ~= ARGV[i + 1] then state = 'restarted' end
  end
end
if state ~= 'same' then
  horizon = format_id(now, 0)
  redis.call('HSET', KEYS[1], 'horizon', horizon)
end
for i = 1, #ARGV, 2 do
  redis.call('HSET', KEYS[1], 'run:' .. ARGV[i], ARGV[i + 1])
end
return { state, horizon }
`,
);

/**
 * A position at or before every message not yet published: `<now>-0`, or the last id handed out
 * if Redis's clock is behind it. KEYS[1] (single server only) the global last-id key.
 */
export const POSITION_SCRIPT = new RedisScript(
  'position',
  `${LUA_HELPERS}
local now = now_ms()
local position = format_id(now, 0)
if KEYS[1] then
  local last = redis.call('GET', KEYS[1])
  if last then
    local ms, seq = parse_id(last)
    if ms >= now then position = last end
  end
end
return position
`,
);
