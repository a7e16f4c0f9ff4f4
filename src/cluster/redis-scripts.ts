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

/** How far a topic's score in the pattern index may lag its newest id (see `PUBLISH_SCRIPT`). */
const INDEX_GRANULARITY_MS = 1_000;

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
local function id_lt(a, b)
  local ams, aseq = parse_id(a)
  local bms, bseq = parse_id(b)
  return ams < bms or (ams == bms and aseq < bseq)
end
`;

/**
 * Appends a batch of publications to their topics' streams and publishes them, atomically, so
 * that history and live delivery agree on ids and order. One call carries every publication an
 * instance made in one event-loop turn (on a Cluster, those of one master): the script's fixed
 * costs (the call, the clock, the last id, each topic's marker and trims) are paid once per
 * batch and per topic, not once per message, and the messages of one topic in a batch go out as
 * one pub/sub message (`<id> <body>` lines joined by `\n`; bodies are JSON, so hold no raw line
 * break).
 *
 * Idempotent per publication: a publication sent again (after a lost reply) is recognised by its
 * origin and counter (the origin's newest one on the topic, or one of the topic's last 1,000
 * entries) and answered with the id it got the first time, without recording or publishing it
 * twice. A lower counter that is not found was overtaken (a client library's retry can reorder
 * commands during a failover) and is recorded now.
 *
 * KEYS (single server): the global last-id key and the first-segment index, then per topic its
 * stream, its marker hash and its first segment's topic index (Cluster: see
 * {@link CLUSTER_PUBLISH_SCRIPT}). ARGV[1] '1' on a Cluster (SPUBLISH, per-topic horizon),
 * ARGV[2] history max count, ARGV[3] history max age (ms), ARGV[4] the markers' lifetime (ms),
 * ARGV[5] origin, ARGV[6] the number of topics; then per topic: its channel, the topic, its first
 * segment, its number of publications k, (Cluster only) its stream and marker hash, and k pairs
 * (counter, body). Returns the ids, in the order the publications were given.
 *
 * Single server: the topic index (`RedisKeys.topicIndex`) scores each topic by the millisecond
 * of its newest id, under its first segment, and the first-segment index scores the segments the
 * same way: a pattern resume asks them which topics hold anything after its position
 * (`TOPICS_SCRIPT`). Both are written at most once per {@link INDEX_GRANULARITY_MS} per topic
 * (marker field `x`: two ZADDs per message cost Redis about 40 % more CPU per publication,
 * measured with `bench/publish-throughput.ts`), and trimmed by age with the streams.
 *
 * Ids are `<ms>-<seq>` with `ms` from Redis's clock, never going back, and `seq` starting at 1
 * within a millisecond (so `<ms>-0` is a position before every message of that millisecond).
 * On a single server the last id is global, which orders ids of all topics by publication (and
 * the pub/sub messages go out in id order); in a cluster it is the topic's own last id.
 *
 * Each entry records in field `p` the id of the message before it in the topic (for the first
 * entry of a stream, the topic's last id from its marker, else the age cutoff): once older
 * entries are trimmed, the `p` of the oldest entry left says exactly up to where history is gone.
 *
 * Count trimming is exact on every append; age trimming and the keys' lifetimes are renewed once
 * per quarter of the max age per topic (marker field `e`), and the replay script skips entries
 * older than the max age (without trimming them: reads do not write), so nothing older than the
 * max age is ever replayed.
 */
const PUBLISH_BODY = `${LUA_HELPERS}
local cluster = ARGV[1] == '1'
local max_count = tonumber(ARGV[2])
local max_age = tonumber(ARGV[3])
local meta_ttl = tonumber(ARGV[4])
local origin = ARGV[5]
local origin_field = 'o:' .. origin
local topics = tonumber(ARGV[6])
local base, per = 2, 3
local now = now_ms()
local cutoff = format_id(now - max_age, 0)
local refresh_ms = math.max(1, math.floor(max_age / 4))
-- Not above the max age: the index keys then live (PEXPIRE below) as long as any score that lags.
local granularity = math.min(${INDEX_GRANULARITY_MS}, max_age)
-- Single server: the newest id handed out, for every topic.
local global_ms, global_seq = 0, 0
if not cluster then
  local last = redis.call('GET', KEYS[1])
  if last then global_ms, global_seq = parse_id(last) end
end
local wrote_any = false
local out = {}
local at = 7

-- This origin's publications among the topic's recent entries: counter -> id.
local function recorded_ids(stream)
  local found = {}
  local entries = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1000)
  for i = 1, #entries do
    local fields = entries[i][2]
    for j = 1, #fields, 2 do
      if fields[j] == 'm' then
        local ok, body = pcall(cjson.decode, fields[j + 1])
        if ok and body[4] == origin and type(body[5]) == 'number' then found[body[5]] = entries[i][1] end
      end
    end
  end
  return found
end

-- Cluster: the topics' keys come in ARGV, and may be of several slots of this node (only the
-- first slot's are declared). Each topic's keys are touched first, before anything is written:
-- a slot this node does not serve, or one moving away whose keys are gone, fails the call here,
-- before any write, and the caller sends that call's topics again slot by slot.
if cluster then
  local p = at
  for t = 1, topics do
    redis.call('EXISTS', ARGV[p + 4], ARGV[p + 5])
    p = p + 6 + 2 * tonumber(ARGV[p + 3])
  end
end

for t = 1, topics do
  local channel, topic, segment, count = ARGV[at], ARGV[at + 1], ARGV[at + 2], tonumber(ARGV[at + 3])
  local stream, meta
  if cluster then
    stream, meta = ARGV[at + 4], ARGV[at + 5]
    at = at + 6
  else
    stream, meta = KEYS[base + per * (t - 1) + 1], KEYS[base + per * (t - 1) + 2]
    at = at + 4
  end
  local marks = redis.call('HMGET', meta, origin_field, 'l', 'h', 'e', 'x')
  local recorded, recorded_id = -1, false
  if marks[1] then
    local sep = string.find(marks[1], ' ', 1, true)
    recorded = tonumber(string.sub(marks[1], 1, sep - 1))
    recorded_id = string.sub(marks[1], sep + 1)
  end
  -- The topic's last id: its marker's, else (a marker lost on its own) its newest entry's.
  local prev = marks[2]
  if not prev then
    local top = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)[1]
    if top then prev = top[1] end
  end
  local last_ms, last_seq = 0, 0
  if prev then last_ms, last_seq = parse_id(prev) else prev = cutoff end
  if global_ms > last_ms or (global_ms == last_ms and global_seq > last_seq) then last_ms, last_seq = global_ms, global_seq end
  local found = false
  local lines = {}
  for j = 1, count do
    local counter, body = tonumber(ARGV[at]), ARGV[at + 1]
    at = at + 2
    local id = false
    if counter == recorded then
      id = recorded_id
    elseif counter < recorded then
      if not found then found = recorded_ids(stream) end
      id = found[counter] or false
    end
    if not id then
      local ms, seq = now, 1
      if last_ms >= now then ms, seq = last_ms, last_seq + 1 end
      id = format_id(ms, seq)
      redis.call('XADD', stream, 'MAXLEN', '=', max_count, id, 'm', body, 'p', prev)
      prev, last_ms, last_seq = id, ms, seq
      if counter > recorded then recorded, recorded_id = counter, id end
      lines[#lines + 1] = id .. ' ' .. body
    end
    out[#out + 1] = id
  end
  if #lines > 0 then
    wrote_any = true
    global_ms, global_seq = last_ms, last_seq
    local fields = { 'l', prev, origin_field, recorded .. ' ' .. recorded_id }
    if cluster and not marks[3] then
      fields[#fields + 1] = 'h'
      fields[#fields + 1] = format_id(now, 0)
    end
    -- Age trim and lifetimes, once per refresh interval per topic rather than on every publish:
    -- the stream then outlives its last entry by the max age at least (reads trim by age first).
    local refresh = not marks[4] or now - tonumber(marks[4]) >= refresh_ms
    if not cluster then
      local index = KEYS[base + per * t]
      -- At most once per INDEX_GRANULARITY_MS per topic: a topic's score is then less than that
      -- behind its newest id, and readers ask for that much more (TOPICS_SCRIPT).
      if not marks[5] or last_ms - tonumber(marks[5]) >= granularity then
        redis.call('ZADD', index, last_ms, topic)
        redis.call('ZADD', KEYS[2], last_ms, segment)
        fields[#fields + 1] = 'x'
        fields[#fields + 1] = tostring(last_ms)
      end
      if refresh then
        -- A score may lag its topic's newest id by the granularity: keep that much more.
        redis.call('ZREMRANGEBYSCORE', index, '-inf', '(' .. (now - max_age - granularity))
        redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. (now - max_age - granularity))
        redis.call('PEXPIRE', index, max_age + refresh_ms)
        redis.call('PEXPIRE', KEYS[2], max_age + refresh_ms)
      end
    end
    if refresh then
      redis.call('XTRIM', stream, 'MINID', '=', cutoff)
      redis.call('PEXPIRE', stream, max_age + refresh_ms)
      redis.call('PEXPIRE', meta, meta_ttl)
      fields[#fields + 1] = 'e'
      fields[#fields + 1] = tostring(now)
    end
    redis.call('HSET', meta, unpack(fields))
    if cluster then
      redis.call('SPUBLISH', channel, table.concat(lines, '\\n'))
    else
      redis.call('PUBLISH', channel, table.concat(lines, '\\n'))
    end
  end
end
if wrote_any and not cluster then redis.call('SET', KEYS[1], format_id(global_ms, global_seq)) end
return out
`;

export const PUBLISH_SCRIPT = new RedisScript('publish', PUBLISH_BODY);

/**
 * {@link PUBLISH_SCRIPT} on a Cluster (Redis 7, as sharded pub/sub): one call carries the topics
 * of several slots of one master (`allow-cross-slot-keys`), so that a turn's publications take
 * one call per master, not one per slot. KEYS: the keys of the call's first slot, declared (a
 * call of one slot declares them all, and is redirected like any command while its slot moves);
 * ARGV as for the single server, with each topic's stream and marker hash after its number of
 * publications. The script touches every topic's keys before it writes anything: a slot this
 * node does not serve (the caller's slot map was stale) or one moving away fails the call
 * whole, unwritten, and the caller sends those topics again one slot per call.
 */
export const CLUSTER_PUBLISH_SCRIPT = new RedisScript('publish-cluster', `#!lua flags=allow-cross-slot-keys\n${PUBLISH_BODY}`);

/**
 * Reads history after given ids, per topic, and says per topic whether it is complete.
 *
 * KEYS[1..n] streams; KEYS[n+1..2n] their marker hashes; KEYS[2n+1] (single server only) the
 * epoch hash (Cluster: see {@link CLUSTER_REPLAY_SCRIPT}). ARGV[1] n, ARGV[2] '1' on a Cluster, ARGV[3] history max age (ms), ARGV[4] the
 * markers' lifetime (ms), ARGV[5..n+4] the exclusive id to read after, per stream.
 *
 * Per topic, the floor is the position from which its history is complete: the latest of the
 * horizon (single server: the epoch, recreated at now when Redis lost it; Cluster: the topic's
 * own, likewise), the `p` of the stream's oldest entry not older than the max age or, for a
 * stream with no such entry, the topic's last id (a topic whose marker expired, idle for the marker's lifetime, is complete only
 * from that long ago). History after an id before the floor is incomplete.
 *
 * Reads do not write, but for a missing horizon: the publish script trims and renews lifetimes.
 * Entries older than the max age may still be in the stream (the publish script trims by age only
 * once per quarter of it); the read skips them as if they were trimmed: it starts at the age
 * cutoff, and the floor is the `p` of the first entry at or after the cutoff (the id of the entry
 * before it, trimmed or expired), exactly what it would be had the stream just been trimmed. The
 * one write: a horizon found missing (single server: the epoch's; Cluster: the topic's, as when
 * its marker expired or a failover lost it) is recreated at now, as `EPOCH_SCRIPT` or
 * `POSITION_SCRIPT` would, so that later reads agree on it; without it, every read would put the
 * floor at its own now and report a loss again after each one.
 *
 * Returns { now, { floor, entries } per stream }; entries are `{ id, { field, value, ... } }`.
 */
const REPLAY_BODY = `${LUA_HELPERS}
local n = tonumber(ARGV[1])
local cluster = ARGV[2] == '1'
local now = now_ms()
local cutoff = format_id(now - tonumber(ARGV[3]), 0)
local meta_ttl = tonumber(ARGV[4])
local horizon = false
if not cluster then
  horizon = redis.call('HGET', KEYS[2 * n + 1], 'horizon')
  if not horizon then
    horizon = format_id(now, 0)
    redis.call('HSET', KEYS[2 * n + 1], 'horizon', horizon)
  end
end
local out = { string.format('%d', now) }
local function later(a, b)
  if id_lt(a, b) then return b end
  return a
end
for i = 1, n do
  local stream, meta, after = KEYS[i], KEYS[n + i], ARGV[4 + i]
  if cluster then stream, meta = ARGV[4 + n + i], ARGV[4 + 2 * n + i] end
  local floor = horizon or format_id(0, 0)
  local marks = redis.call('HMGET', meta, 'l', 'h')
  if cluster then
    if not marks[2] then
      marks[2] = format_id(now, 0)
      redis.call('HSET', meta, 'h', marks[2])
      redis.call('PEXPIRE', meta, meta_ttl)
    end
    floor = later(floor, marks[2])
  end
  -- The first entry not expired (older ones are skipped as if trimmed; see above).
  local first = redis.call('XRANGE', stream, cutoff, '+', 'COUNT', 1)[1]
  if first then
    local fields = first[2]
    for j = 1, #fields, 2 do
      if fields[j] == 'p' then floor = later(floor, fields[j + 1]) end
    end
  elseif marks[1] then
    floor = later(floor, marks[1])
  else
    floor = later(floor, format_id(now - meta_ttl, 0))
  end
  local from = '(' .. after
  if id_lt(after, cutoff) then from = cutoff end
  out[#out + 1] = { floor, redis.call('XRANGE', stream, from, '+') }
end
return out
`;

export const REPLAY_SCRIPT = new RedisScript('replay', REPLAY_BODY);

/**
 * {@link REPLAY_SCRIPT} on a Cluster: one call reads the topics of several slots of one master
 * (`allow-cross-slot-keys`). KEYS: the streams and marker hashes of the call's first slot,
 * declared; ARGV as for the single server, then the n streams and the n marker hashes. A topic
 * whose keys this master does not serve fails the call (the caller reads again slot by slot);
 * its one write, a missing horizon, is only ever made on a key the master serves.
 */
export const CLUSTER_REPLAY_SCRIPT = new RedisScript('replay-cluster', `#!lua flags=allow-cross-slot-keys\n${REPLAY_BODY}`);

/**
 * The topics that may hold messages after a position, for pattern resumes (single server): those
 * of the topic index scored at or after the position's millisecond less the index's granularity
 * (a topic's score may be that much behind its newest id), under each
 * first segment asked for, or under every segment of the first-segment index when a pattern
 * starts with a wildcard. Also the clock and the epoch's horizon (the index, like the history,
 * is complete only from there).
 *
 * KEYS[1] the epoch hash, KEYS[2] the first-segment index, KEYS[3..] the topic indexes of the
 * segments asked for (none: every segment's). ARGV[1] the position's millisecond, ARGV[2] the
 * index key prefix (for every segment's), ARGV[3] the history's max age (ms).
 * Returns { now, horizon, topic... }.
 */
export const TOPICS_SCRIPT = new RedisScript(
  'topics',
  `${LUA_HELPERS}
local now = now_ms()
local horizon = redis.call('HGET', KEYS[1], 'horizon') or format_id(now, 0)
local out = { string.format('%d', now), horizon }
local from = tonumber(ARGV[1]) - math.min(${INDEX_GRANULARITY_MS}, tonumber(ARGV[3]))
local indexes = {}
if #KEYS > 2 then
  for i = 3, #KEYS do indexes[#indexes + 1] = KEYS[i] end
else
  for _, segment in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], from, '+inf')) do indexes[#indexes + 1] = ARGV[2] .. segment end
end
for _, index in ipairs(indexes) do
  for _, topic in ipairs(redis.call('ZRANGEBYSCORE', index, from, '+inf')) do out[#out + 1] = topic end
end
return out
`,
);

/**
 * Checks the run marker when an instance (re)connects to a single server: the horizon (the id
 * from which history is complete) moves to now when the marker is missing (a new or emptied
 * Redis) or when the server's run id changed (it restarted: whatever it held since its last save
 * may be lost).
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
 * A position at or before every message not yet published, and after every one published:
 * `<now>-0`, or the last id handed out if Redis's clock is behind it.
 * Single server: KEYS[1] the global last-id key. Cluster: KEYS[1] the topic's marker hash (its
 * horizon is set if missing, so that a position handed out now is known to be complete), ARGV[1]
 * the marker's lifetime (ms).
 */
export const POSITION_SCRIPT = new RedisScript(
  'position',
  `${LUA_HELPERS}
local now = now_ms()
local position = format_id(now, 0)
local last
if ARGV[1] then
  local marks = redis.call('HMGET', KEYS[1], 'l', 'h')
  last = marks[1]
  if not marks[2] then redis.call('HSET', KEYS[1], 'h', position) end
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))
else
  last = redis.call('GET', KEYS[1])
end
if last then
  local ms = parse_id(last)
  if ms >= now then position = last end
end
return position
`,
);

/**
 * Reads the newest entries of streams (rewind and history), after trimming what is older than
 * the max age, as the replay script does, so that nothing expired is ever returned.
 *
 * KEYS[1..n] streams. ARGV[1] history max age (ms); then per stream: the exclusive end
 * (`(<id>`, or `+` for the newest) and the most entries to return.
 * Returns { now, entries per stream, newest first }; entries are `{ id, { field, value, ... } }`.
 */
export const TAIL_SCRIPT = new RedisScript(
  'tail',
  `${LUA_HELPERS}
local now = now_ms()
local cutoff = format_id(now - tonumber(ARGV[1]), 0)
local out = { string.format('%d', now) }
for i = 1, #KEYS do
  redis.call('XTRIM', KEYS[i], 'MINID', '=', cutoff)
  out[#out + 1] = redis.call('XREVRANGE', KEYS[i], ARGV[2 * i], '-', 'COUNT', tonumber(ARGV[2 * i + 1]))
end
return out
`,
);
