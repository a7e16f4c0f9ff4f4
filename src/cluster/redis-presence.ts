import clusterKeySlot from 'cluster-key-slot';
import type { Cluster, Redis } from 'ioredis';
import type { PresenceEntry, PresenceRefresh, PresenceStore } from '../core/presence.js';
import type { PresenceData, PresenceMember } from '../protocol/frames.js';
import type { RedisKeys } from './redis-keys.js';
import { RedisScript } from './redis-scripts.js';

/**
 * At most this many topics per script call: a call blocks Redis while it runs (about 8 ms for 250
 * topics of 3 to 4 local members each, bench/presence-cost.ts). The calls of one refresh go out
 * together (one round trip).
 */
const MAX_TOPICS_PER_CALL = 250;

// Redis's clock in ms (every instance scores with the same clock), and list operations in chunks
// (Lua's `unpack` is limited to a few thousand values).
const LUA_HELPERS = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function each_chunk(list, run)
  for from = 1, #list, 1000 do
    run(unpack(list, from, math.min(from + 999, #list)))
  end
end
`;

/**
 * Adds members. KEYS: per topic its presence sorted set and its member hash (one slot).
 * ARGV[1] time-to-live (ms), ARGV[2] the keys' lifetime (ms); then per topic: n, then n pairs
 * (client id, member JSON). Returns per member 1 when this call added it (a join is due), else 0.
 */
const ADD_SCRIPT = new RedisScript(
  'presence-add',
  `${LUA_HELPERS}
local expires = now_ms() + tonumber(ARGV[1])
local life = tonumber(ARGV[2])
local out = {}
local at = 3
for k = 1, #KEYS, 2 do
  local z, h = KEYS[k], KEYS[k + 1]
  local n = tonumber(ARGV[at])
  at = at + 1
  for i = 1, n do
    local id, member = ARGV[at], ARGV[at + 1]
    at = at + 2
    local added = redis.call('ZADD', z, expires, id)
    if added == 1 then redis.call('HSET', h, id, member) end
    out[#out + 1] = added
  end
  redis.call('PEXPIRE', z, life)
  redis.call('PEXPIRE', h, life)
end
return out
`,
);

/**
 * Removes members. KEYS as {@link ADD_SCRIPT}; ARGV per topic: n, then n client ids. Returns per
 * member 1 when this call removed it (a leave is due), else 0 (a sweep removed it first, or it was
 * never added).
 */
const REMOVE_SCRIPT = new RedisScript(
  'presence-remove',
  `local out = {}
local at = 1
for k = 1, #KEYS, 2 do
  local z, h = KEYS[k], KEYS[k + 1]
  local n = tonumber(ARGV[at])
  at = at + 1
  for i = 1, n do
    local id = ARGV[at]
    at = at + 1
    local removed = redis.call('ZREM', z, id)
    if removed == 1 then redis.call('HDEL', h, id) end
    out[#out + 1] = removed
  end
end
return out
`,
);

/**
 * One instance's periodic call: refreshes its members and sweeps the expired ones, atomically
 * (so that of all the instances sweeping a topic, exactly one removes each expired member).
 * KEYS as {@link ADD_SCRIPT}; ARGV[1] time-to-live (ms), ARGV[2] the keys' lifetime (ms); then per
 * topic: n, then n client ids of this instance. Returns per topic { ids this instance holds that
 * Redis did not, member JSON of each expired member removed }.
 */
const REFRESH_SCRIPT = new RedisScript(
  'presence-refresh',
  `${LUA_HELPERS}
local now = now_ms()
local expires = now + tonumber(ARGV[1])
local life = tonumber(ARGV[2])
local out = {}
local at = 3
for k = 1, #KEYS, 2 do
  local z, h = KEYS[k], KEYS[k + 1]
  local n = tonumber(ARGV[at])
  at = at + 1
  local missing = {}
  -- One ZADD per 500 ids; XX adds nothing and CH counts the scores moved: when every score moved,
  -- no id is missing (the usual case), otherwise each id not found is named.
  for from = at, at + n - 1, 500 do
    local to = math.min(from + 499, at + n - 1)
    local pairs = {}
    for i = from, to do
      pairs[#pairs + 1] = expires
      pairs[#pairs + 1] = ARGV[i]
    end
    if redis.call('ZADD', z, 'XX', 'CH', unpack(pairs)) < to - from + 1 then
      for i = from, to do
        if not redis.call('ZSCORE', z, ARGV[i]) then missing[#missing + 1] = ARGV[i] end
      end
    end
  end
  at = at + n
  local expired = redis.call('ZRANGEBYSCORE', z, '-inf', now)
  local gone = {}
  if #expired > 0 then
    each_chunk(expired, function(...)
      local data = redis.call('HMGET', h, ...)
      for i = 1, #data do
        if data[i] then gone[#gone + 1] = data[i] end
      end
      redis.call('ZREM', z, ...)
      redis.call('HDEL', h, ...)
    end)
  end
  if n > 0 then
    redis.call('PEXPIRE', z, life)
    redis.call('PEXPIRE', h, life)
  end
  out[#out + 1] = { missing, gone }
end
return out
`,
);

/** Who is on a topic: KEYS[1] its sorted set, KEYS[2] its hash; ARGV[1] '1' for the count only. Members not yet expired. */
const READ_SCRIPT = new RedisScript(
  'presence-read',
  `${LUA_HELPERS}
local after = '(' .. now_ms()
if ARGV[1] == '1' then return redis.call('ZCOUNT', KEYS[1], after, '+inf') end
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], after, '+inf')
if #ids == 0 then return {} end
local out = {}
each_chunk(ids, function(...)
  local data = redis.call('HMGET', KEYS[2], ...)
  for i = 1, #data do
    if data[i] then out[#out + 1] = data[i] end
  end
end)
return out
`,
);

/** Runs a Redis call with the broker's timeout and closed-connection handling. */
export type RedisCall = <T>(call: Promise<T>, what: string) => Promise<T>;

/**
 * Presence in Redis, shared by every instance (Centrifugo's layout): per topic a sorted set of
 * client ids scored by when they expire (Redis's clock) and a hash of client id to the member's
 * JSON, both tagged with the topic (one slot on a Cluster). Adds and removes of one turn, and each
 * refresh, are one script call per slot (one in all on a single server).
 */
export class RedisPresenceStore implements PresenceStore {
  private readonly lifetimeMs: number;

  constructor(
    private readonly client: Redis | Cluster,
    private readonly keys: RedisKeys,
    private readonly cluster: boolean,
    private readonly ttlMs: number,
    private readonly call: RedisCall,
    /** Subscribes to the broker's link becoming `ready` again. */
    private readonly linkReady?: (listener: () => void) => () => void,
  ) {
    // Keys outlive their last refresh long enough for a sweep to find every expired member.
    this.lifetimeMs = 3 * ttlMs;
  }

  async add(entries: readonly PresenceEntry[]): Promise<boolean[]> {
    const requests = entries.map(({ topic, member }) => ({ topic, values: [member.clientId, JSON.stringify(member)] }));
    return this.perMember(ADD_SCRIPT, requests, [this.ttlMs, this.lifetimeMs], 'a presence add');
  }

  async remove(members: ReadonlyArray<{ readonly topic: string; readonly clientId: string }>): Promise<boolean[]> {
    const requests = members.map(({ topic, clientId }) => ({ topic, values: [clientId] }));
    return this.perMember(REMOVE_SCRIPT, requests, [], 'a presence remove');
  }

  async refresh(local: ReadonlyMap<string, readonly string[]>, sweep: readonly string[]): Promise<PresenceRefresh> {
    const topics = [...new Set([...local.keys(), ...sweep])];
    const calls = this.bySlot(topics).map(async (group) => {
      const keys: string[] = [];
      const args: Array<string | number> = [this.ttlMs, this.lifetimeMs];
      for (const topic of group) {
        const ids = local.get(topic) ?? [];
        keys.push(this.keys.presence(topic), this.keys.presenceMembers(topic));
        args.push(ids.length, ...ids);
      }
      const reply = (await this.call(REFRESH_SCRIPT.run(this.client, keys, args), 'a presence refresh')) as Array<[string[], string[]]>;
      return group.map((topic, i) => ({ topic, reply: reply[i] ?? [[], []] }));
    });
    const missing: Array<{ topic: string; clientId: string }> = [];
    const expired: PresenceEntry[] = [];
    for (const group of await Promise.all(calls)) {
      for (const { topic, reply } of group) {
        for (const clientId of reply[0]) missing.push({ topic, clientId });
        for (const json of reply[1]) {
          const member = parseMember(json);
          if (member) expired.push({ topic, member });
        }
      }
    }
    return { missing, expired };
  }

  onAvailable(listener: () => void): () => void {
    return this.linkReady?.(listener) ?? (() => undefined);
  }

  async members(topic: string): Promise<PresenceData> {
    const reply = (await this.call(READ_SCRIPT.run(this.client, this.topicKeys(topic), ['0']), 'a presence read')) as string[];
    const members = reply.map(parseMember).filter((member): member is PresenceMember => member !== undefined);
    return { count: members.length, members };
  }

  async count(topic: string): Promise<number> {
    return Number(await this.call(READ_SCRIPT.run(this.client, this.topicKeys(topic), ['1']), 'a presence count'));
  }

  private topicKeys(topic: string): string[] {
    return [this.keys.presence(topic), this.keys.presenceMembers(topic)];
  }

  /**
   * Runs `script` for requests of many topics (per request: the topic and its values), grouped by
   * topic and slot, and answers one boolean per request, in order.
   */
  private async perMember(
    script: RedisScript,
    requests: ReadonlyArray<{ readonly topic: string; readonly values: readonly string[] }>,
    head: ReadonlyArray<string | number>,
    what: string,
  ): Promise<boolean[]> {
    const byTopic = new Map<string, number[]>();
    requests.forEach(({ topic }, i) => {
      const list = byTopic.get(topic);
      if (list) list.push(i);
      else byTopic.set(topic, [i]);
    });
    const answers = new Array<boolean>(requests.length).fill(false);
    await Promise.all(
      this.bySlot([...byTopic.keys()]).map(async (group) => {
        const keys: string[] = [];
        const args: Array<string | number> = [...head];
        const order: number[] = [];
        for (const topic of group) {
          const indexes = byTopic.get(topic)!;
          keys.push(this.keys.presence(topic), this.keys.presenceMembers(topic));
          args.push(indexes.length);
          for (const i of indexes) {
            args.push(...requests[i]!.values);
            order.push(i);
          }
        }
        const reply = (await this.call(script.run(this.client, keys, args), what)) as number[];
        order.forEach((index, at) => (answers[index] = Number(reply[at]) === 1));
      }),
    );
    return answers;
  }

  /** Topics grouped so that each group can go in one script call: one slot (one group on a single server), a bounded number. */
  private bySlot(topics: readonly string[]): string[][] {
    const groups = new Map<number, string[]>();
    for (const topic of topics) {
      const slot = this.cluster ? clusterKeySlot(this.keys.presence(topic)) : 0;
      const group = groups.get(slot);
      if (group) group.push(topic);
      else groups.set(slot, [topic]);
    }
    const out: string[][] = [];
    for (const group of groups.values()) {
      for (let from = 0; from < group.length; from += MAX_TOPICS_PER_CALL) out.push(group.slice(from, from + MAX_TOPICS_PER_CALL));
    }
    return out;
  }
}

/** A member as stored; anything unreadable is skipped. */
function parseMember(json: string): PresenceMember | undefined {
  try {
    const value = JSON.parse(json) as PresenceMember;
    return typeof value === 'object' && value !== null && typeof value.clientId === 'string' ? value : undefined;
  } catch {
    return undefined;
  }
}
