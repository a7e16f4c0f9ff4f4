import clusterKeySlot from 'cluster-key-slot';
import type { Cluster, Redis } from 'ioredis';
import type { BrokerRecord, TopicRead, TopicsAfter } from '../interfaces/broker.interface.js';
import { comparePositions as compareIds, parsePosition as parseId, type Position as ParsedId } from '../protocol/ids.js';
import { encodeBody, idText, receive, type WireMessage } from './redis-codec.js';
import { firstSegment, type RedisKeys } from './redis-keys.js';
import {
  CLUSTER_PUBLISH_SCRIPT,
  CLUSTER_REPLAY_SCRIPT,
  EPOCH_SCRIPT,
  POSITION_SCRIPT,
  PUBLISH_SCRIPT,
  REPLAY_SCRIPT,
  TAIL_SCRIPT,
  TOPICS_SCRIPT,
} from './redis-scripts.js';

const SCRIPTS = [PUBLISH_SCRIPT, REPLAY_SCRIPT, EPOCH_SCRIPT, POSITION_SCRIPT, TAIL_SCRIPT, TOPICS_SCRIPT];
// The Cluster's publish script has a shebang (Redis 7), which a single Redis 6.2 would refuse.
const CLUSTER_SCRIPTS = [CLUSTER_PUBLISH_SCRIPT, CLUSTER_REPLAY_SCRIPT, POSITION_SCRIPT, TAIL_SCRIPT];

/** At most this many publications per script call, and about this many bytes of data. */
const MAX_BATCH_MESSAGES = 256;
const MAX_BATCH_BYTES = 512 * 1024;
/**
 * Script calls a turn's publications are spread over, with those still in flight on the same
 * connection (per master on a Cluster), while each call carries at least
 * {@link MIN_SPLIT_MESSAGES}: with one call in flight, Redis and the instance take turns (one
 * runs the script while the other waits for it), with several the instance settles one call's
 * publications and sends the next while Redis runs the others. Redis runs one connection's calls
 * in order, so per-topic order and the idempotence of a second copy stay as with one call.
 * Measured with `bench/publish-throughput.ts` (100 topics, one redis-server, 3 s; medians of 3
 * alternating rounds): with 64 publications in flight, 58,529 msg/s as one call per turn vs
 * 92,231 split (Redis CPU 9.2 vs 9.6 µs per message); 256 in flight: 88,859 vs 101,374; 1,024:
 * 153,538 vs 159,271. With no core to spare (Redis and the instance cannot run at the same time
 * anyway), 3 to 5 % slower (docs/performance.md, "Publishing through Redis").
 */
const CALLS_IN_FLIGHT = 4;
const MIN_SPLIT_MESSAGES = 16;

/** An id more than this far ahead of Redis's clock was not handed out by it: unknown. */
const FUTURE_TOLERANCE_MS = 1_000;
/** How long a topic's marker outlives its last use (at least): a day, or twice the history window. */
const MARKER_MIN_LIFETIME_MS = 24 * 60 * 60_000;

export interface RedisHistoryLimits {
  readonly maxCount: number;
  readonly maxAgeMs: number;
}

export type EpochState = 'created' | 'restarted' | 'same';

/**
 * The shared history in Redis Streams, one stream and one marker hash per topic, and the scripts
 * that keep ids, history and live delivery consistent (see `redis-scripts.ts`). Stateless apart
 * from its client: every instance reads the same history.
 */
export class RedisHistory {
  private readonly markerLifetimeMs: number;
  /** Publish calls sent and not yet answered, per connection (`''`, or a Cluster master's `host:port`). */
  private readonly callsInFlight = new Map<string, number>();

  constructor(
    private readonly client: Redis | Cluster,
    private readonly keys: RedisKeys,
    private readonly cluster: boolean,
    private readonly limits: RedisHistoryLimits,
  ) {
    this.markerLifetimeMs = Math.max(MARKER_MIN_LIFETIME_MS, 2 * limits.maxAgeMs);
  }

  /** Loads every script into the script cache of every server (every master of a cluster). */
  async loadScripts(): Promise<void> {
    const servers: Array<Redis | Cluster> = this.cluster ? (this.client as Cluster).nodes('master') : [this.client];
    const scripts = this.cluster ? CLUSTER_SCRIPTS : SCRIPTS;
    await Promise.all(servers.flatMap((server) => scripts.map((script) => server.script('LOAD', script.source))));
  }

  /** Records and publishes one message (see {@link appendAll}); resolves to its id. */
  append(message: WireMessage): Promise<string> {
    return this.appendAll([message])[0]!;
  }

  /**
   * Records and publishes messages with as few script calls as the keys allow: one per batch on
   * a single server; on a Cluster, one per master and batch, carrying the topics of every slot
   * the master serves (as far as the client's slot map knows; see {@link appendOnMaster}).
   * A turn's publications are spread over several calls while few are in flight
   * ({@link CALLS_IN_FLIGHT}). Within a call, messages are grouped by topic, each topic's in the
   * order given; calls go out in order on the one command connection (per master). One promise
   * per message, in order; `around` wraps each call once (a timeout, say), not each message.
   */
  appendAll(messages: readonly WireMessage[], around: (call: Promise<unknown[]>) => Promise<unknown[]> = (call) => call): Array<Promise<string>> {
    const groups = new Map<string, WireMessage[]>();
    const slots = this.cluster ? (this.client as Cluster).slots : undefined;
    for (const message of messages) {
      let key = '';
      if (slots) {
        const slot = clusterKeySlot(this.keys.stream(message.topic));
        key = slots[slot]?.[0] ?? `slot ${slot}`;
      }
      let group = groups.get(key);
      if (!group) groups.set(key, (group = []));
      group.push(message);
    }
    const ids = new Map<WireMessage, Promise<string>>();
    for (const [key, group] of groups) {
      // Even parts, none under MIN_SPLIT_MESSAGES (a remainder of a few would cost a call of its own).
      const calls = Math.max(1, Math.min(CALLS_IN_FLIGHT - (this.callsInFlight.get(key) ?? 0), Math.floor(group.length / MIN_SPLIT_MESSAGES)));
      const perCall = Math.min(MAX_BATCH_MESSAGES, Math.ceil(group.length / calls));
      for (let from = 0; from < group.length;) {
        const batch: WireMessage[] = [];
        let bytes = 0;
        while (from < group.length && batch.length < perCall && bytes < MAX_BATCH_BYTES) {
          const message = group[from++]!;
          bytes += message.data.length;
          batch.push(message);
        }
        const answer = around(this.cluster ? this.appendOnMaster(key, batch) : this.appendBatch(this.client, batch));
        this.callsInFlight.set(key, (this.callsInFlight.get(key) ?? 0) + 1);
        const settled = () => {
          const left = this.callsInFlight.get(key)! - 1;
          if (left > 0) this.callsInFlight.set(key, left);
          else this.callsInFlight.delete(key);
        };
        answer.then(settled, settled);
        batch.forEach((message, i) =>
          ids.set(
            message,
            answer.then((reply) => String(reply[i])),
          ),
        );
      }
    }
    return messages.map((message) => ids.get(message)!);
  }

  /**
   * Cluster: one call for the topics of several slots, sent on the connection of the master the
   * slot map says serves them (not redirected: the first slot's keys are declared, the others'
   * checked by the script before it writes). Redis refusing it (the map was stale, a slot is
   * moving: MOVED, ASK, a key not local, TRYAGAIN...) means nothing was written: the topics go
   * again one slot per call through the Cluster client, which follows redirections as for any
   * command. A lost connection is not a refusal: it fails the call (its outcome unknown), and
   * the outbox sends it again.
   */
  private async appendOnMaster(nodeKey: string, batch: readonly WireMessage[]): Promise<unknown[]> {
    const bySlot = new Map<number, WireMessage[]>();
    for (const message of batch) {
      const slot = clusterKeySlot(this.keys.stream(message.topic));
      const list = bySlot.get(slot);
      if (list) list.push(message);
      else bySlot.set(slot, [message]);
    }
    const node = bySlot.size > 1 ? (this.client as Cluster).nodes('master').find((n) => `${n.options.host}:${n.options.port}` === nodeKey) : undefined;
    if (node) {
      try {
        return await this.appendBatch(node, batch);
      } catch (error) {
        if (!(error instanceof Error) || error.name !== 'ReplyError') throw error;
      }
    }
    const parts = [...bySlot.values()];
    const replies = await Promise.all(parts.map((part) => this.appendBatch(this.client, part)));
    const byMessage = new Map<WireMessage, unknown>();
    parts.forEach((part, p) => part.forEach((message, i) => byMessage.set(message, replies[p]![i])));
    return batch.map((message) => byMessage.get(message));
  }

  /** One script call for `batch` (on a Cluster, declaring the keys of its first topic's slot). */
  private async appendBatch(client: Redis | Cluster, batch: readonly WireMessage[]): Promise<unknown[]> {
    const byTopic = new Map<string, WireMessage[]>();
    for (const message of batch) {
      const list = byTopic.get(message.topic);
      if (list) list.push(message);
      else byTopic.set(message.topic, [message]);
    }
    const keys: string[] = this.cluster ? [] : [this.keys.lastId, this.keys.segmentIndex];
    const args: Array<string | number> = [
      this.cluster ? '1' : '0',
      this.limits.maxCount,
      this.limits.maxAgeMs,
      this.markerLifetimeMs,
      batch[0]!.origin,
      byTopic.size,
    ];
    const firstSlot = this.cluster ? clusterKeySlot(this.keys.stream(batch[0]!.topic)) : 0;
    const order: WireMessage[] = [];
    for (const [topic, list] of byTopic) {
      const segment = firstSegment(topic);
      const stream = this.keys.stream(topic);
      const meta = this.keys.meta(topic);
      args.push(this.keys.channel(topic), topic, segment, list.length);
      if (!this.cluster) keys.push(stream, meta, this.keys.topicIndex(segment));
      else {
        args.push(stream, meta);
        if (clusterKeySlot(stream) === firstSlot) keys.push(stream, meta);
      }
      for (const message of list) {
        args.push(message.counter, encodeBody(message));
        order.push(message);
      }
    }
    const reply = (await (this.cluster ? CLUSTER_PUBLISH_SCRIPT : PUBLISH_SCRIPT).run(client, keys, args)) as unknown[];
    if (!Array.isArray(reply) || reply.length !== order.length) throw new Error('Redis answered an unreadable publish reply');
    // The reply follows the script's order (by topic); give it back in the batch's order.
    const byMessage = new Map(order.map((message, i) => [message, reply[i]]));
    return batch.map((message) => byMessage.get(message));
  }

  /**
   * For each topic, a position at or before every message not yet published. On a single server
   * one read serves every topic (ids are global); on a Cluster each topic is read on its shard.
   */
  async positions(topics: readonly string[]): Promise<ParsedId[]> {
    if (!this.cluster) {
      const position = readPosition(await POSITION_SCRIPT.run(this.client, [this.keys.lastId], []));
      return topics.map(() => position);
    }
    return Promise.all(topics.map(async (topic) => readPosition(await POSITION_SCRIPT.run(this.client, [this.keys.meta(topic)], [this.markerLifetimeMs]))));
  }

  /**
   * Single server: the topics that may hold messages after `after`, under the first segments of
   * `patterns` (every segment when one starts with a wildcard), with the floor from which the
   * list is complete: the epoch's horizon and the history's age.
   */
  async topicsAfter(after: ParsedId, patterns: readonly string[]): Promise<TopicsAfter> {
    const segments = new Set(patterns.map(firstSegment));
    const everySegment = segments.has('*') || segments.has('#');
    const keys = [this.keys.epoch, this.keys.segmentIndex, ...(everySegment ? [] : [...segments].map((segment) => this.keys.topicIndex(segment)))];
    const reply = (await TOPICS_SCRIPT.run(this.client, keys, [after.ms, this.keys.topicIndex(''), this.limits.maxAgeMs])) as string[];
    const now = Number(reply[0]);
    const horizon = parseId(reply[1]) ?? { ms: now, seq: 0 };
    const cutoff = { ms: now - this.limits.maxAgeMs, seq: 0 };
    return {
      topics: [...new Set(reply.slice(2))],
      floor: compareIds(horizon, cutoff) > 0 ? horizon : cutoff,
      readAt: { ms: now, seq: 0 },
      limit: { ms: now + FUTURE_TOLERANCE_MS, seq: Number.MAX_SAFE_INTEGER },
    };
  }

  /** Checks the run marker against the run ids of the server (single server; see `EPOCH_SCRIPT`). */
  async checkEpoch(runIds: ReadonlyArray<readonly [string, string]>): Promise<{ state: EpochState; horizon: ParsedId }> {
    const reply = (await EPOCH_SCRIPT.run(this.client, [this.keys.epoch], runIds.flat())) as [EpochState, string];
    const horizon = parseId(reply[1]);
    if (!horizon) throw new Error('Redis answered an unreadable horizon');
    return { state: reply[0], horizon };
  }

  /** Reads each topic's history after its own position. */
  async read(requests: ReadonlyArray<{ readonly topic: string; readonly after: ParsedId }>): Promise<TopicRead[]> {
    if (requests.length === 0) return [];
    if (!this.cluster) return this.interpret(requests, await this.runReplay(this.client, requests, [this.keys.epoch]));
    // In a cluster each topic lives in its own slot: one call per master, as for publications.
    const slots = (this.client as Cluster).slots;
    const groups = new Map<string, number[]>();
    requests.forEach((request, i) => {
      const slot = clusterKeySlot(this.keys.stream(request.topic));
      const key = slots[slot]?.[0] ?? `slot ${slot}`;
      const group = groups.get(key);
      if (group) group.push(i);
      else groups.set(key, [i]);
    });
    const out = new Array<TopicRead>(requests.length);
    await Promise.all(
      [...groups].map(async ([key, indices]) => {
        const reads = await this.readOnMaster(
          key,
          indices.map((i) => requests[i]!),
        );
        indices.forEach((i, k) => (out[i] = reads[k]!));
      }),
    );
    return out;
  }

  /**
   * Each topic's newest records (at most `limit`, strictly before `before`), oldest first, none
   * older than the max age: one script call on a single server, one per topic on a Cluster.
   */
  async tail(requests: ReadonlyArray<{ readonly topic: string; readonly limit: number; readonly before?: ParsedId }>): Promise<BrokerRecord[][]> {
    // Nothing comes before 0-0 (and Redis refuses it as an exclusive end).
    const wanted = requests.filter(({ limit, before }) => limit >= 1 && !(before && before.ms === 0 && before.seq === 0));
    const groups = this.cluster ? wanted.map((request) => [request]) : wanted.length > 0 ? [wanted] : [];
    const replies = await Promise.all(groups.map((group) => this.runTail(group)));
    const byRequest = new Map(groups.flatMap((group, g) => group.map((request, i) => [request, replies[g]![i]!] as const)));
    return requests.map((request) => byRequest.get(request) ?? []);
  }

  private async runTail(requests: ReadonlyArray<{ readonly topic: string; readonly limit: number; readonly before?: ParsedId }>): Promise<BrokerRecord[][]> {
    const keys = requests.map((request) => this.keys.stream(request.topic));
    const args: Array<string | number> = [this.limits.maxAgeMs];
    for (const { limit, before } of requests) args.push(before ? `(${idText(before)}` : '+', Math.floor(limit));
    const reply = (await TAIL_SCRIPT.run(this.client, keys, args)) as unknown[];
    return requests.map((_, i) => readEntries((reply[1 + i] as Array<[string, string[]]> | undefined) ?? []).reverse());
  }

  /**
   * Cluster: one read for the topics of several slots, on the connection of the master the slot
   * map names (see {@link appendOnMaster}); refused (a stale map, a slot moving), it is read
   * again one slot per call through the Cluster client, which follows redirections. The one
   * write a read may make (a missing horizon) is made only on a key the master serves.
   */
  private async readOnMaster(nodeKey: string, requests: ReadonlyArray<{ topic: string; after: ParsedId }>): Promise<TopicRead[]> {
    const bySlot = new Map<number, Array<{ topic: string; after: ParsedId }>>();
    for (const request of requests) {
      const slot = clusterKeySlot(this.keys.stream(request.topic));
      const list = bySlot.get(slot);
      if (list) list.push(request);
      else bySlot.set(slot, [request]);
    }
    const node = bySlot.size > 1 ? (this.client as Cluster).nodes('master').find((n) => `${n.options.host}:${n.options.port}` === nodeKey) : undefined;
    if (node) {
      try {
        return this.interpret(requests, await this.runReplay(node, requests, []));
      } catch (error) {
        if (!(error instanceof Error) || error.name !== 'ReplyError') throw error;
      }
    }
    const byTopic = new Map<{ topic: string; after: ParsedId }, TopicRead>();
    await Promise.all(
      [...bySlot.values()].map(async (part) => {
        const reads = this.interpret(part, await this.runReplay(this.client, part, []));
        part.forEach((request, i) => byTopic.set(request, reads[i]!));
      }),
    );
    return requests.map((request) => byTopic.get(request)!);
  }

  /** One replay call (on a Cluster, declaring the keys of the first topic's slot; the names of all in ARGV). */
  private async runReplay(client: Redis | Cluster, requests: ReadonlyArray<{ topic: string; after: ParsedId }>, extraKeys: string[]): Promise<ReplayReply> {
    const streams = requests.map((r) => this.keys.stream(r.topic));
    const metas = requests.map((r) => this.keys.meta(r.topic));
    const args: Array<string | number> = [
      requests.length,
      this.cluster ? '1' : '0',
      this.limits.maxAgeMs,
      this.markerLifetimeMs,
      ...requests.map((r) => idText(r.after)),
    ];
    if (!this.cluster) return (await REPLAY_SCRIPT.run(client, [...streams, ...metas, ...extraKeys], args)) as ReplayReply;
    const firstSlot = clusterKeySlot(streams[0]!);
    const declared = requests.flatMap((_, i) => (clusterKeySlot(streams[i]!) === firstSlot ? [streams[i]!, metas[i]!] : []));
    return (await CLUSTER_REPLAY_SCRIPT.run(client, declared, [...args, ...streams, ...metas])) as ReplayReply;
  }

  private interpret(requests: ReadonlyArray<{ topic: string; after: ParsedId }>, reply: ReplayReply): TopicRead[] {
    const now = Number(reply[0]);
    // Ids come from Redis's clock, which may step back a little: a position up to this far ahead is still one it handed out.
    const limit = { ms: now + FUTURE_TOLERANCE_MS, seq: Number.MAX_SAFE_INTEGER };
    return requests.map((request, i) => {
      const [floorText, entries] = reply[1 + i] as [string, Array<[string, string[]]>];
      const floor = parseId(floorText) ?? { ms: now, seq: 0 };
      const unknown = compareIds(request.after, limit) > 0;
      return { topic: request.topic, floor, records: unknown ? [] : readEntries(entries), readAt: { ms: now, seq: 0 }, limit };
    });
  }
}

type ReplayReply = [string, ...Array<[string, Array<[string, string[]]>]>];

function readPosition(reply: unknown): ParsedId {
  const position = parseId(String(reply));
  if (!position) throw new Error('Redis answered an unreadable position');
  return position;
}

/** Stream entries as received messages. */
function readEntries(entries: ReadonlyArray<[string, string[]]>): BrokerRecord[] {
  const out: BrokerRecord[] = [];
  for (const [id, fields] of entries) {
    const body = fieldValue(fields, 'm');
    const received = body === undefined ? undefined : receive(id, body);
    if (received) out.push(received);
  }
  return out;
}

function fieldValue(fields: readonly string[], name: string): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}
