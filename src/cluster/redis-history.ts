import type { Cluster, Redis } from 'ioredis';
import { compareIds, parseId, type ParsedId } from '../core/message-id.js';
import { encodeBody, idText, receive, type Received, type WireMessage } from './redis-codec.js';
import type { RedisKeys } from './redis-keys.js';
import { EPOCH_SCRIPT, POSITION_SCRIPT, PUBLISH_SCRIPT, REPLAY_SCRIPT } from './redis-scripts.js';

const SCRIPTS = [PUBLISH_SCRIPT, REPLAY_SCRIPT, EPOCH_SCRIPT, POSITION_SCRIPT];

/** An id more than this far ahead of Redis's clock was not handed out by it: unknown, so reset. */
const FUTURE_TOLERANCE_MS = 1_000;

export interface RedisHistoryLimits {
  readonly maxCount: number;
  readonly maxAgeMs: number;
}

/** What one topic's history holds after an id. */
export interface TopicReplay {
  readonly topic: string;
  /** Something after the id may be gone (trimmed, expired, lost with a Redis restart) or the id is unknown. */
  readonly reset: boolean;
  /** Messages after the id, oldest first, each publication once. */
  readonly received: Received[];
  /** Redis's clock when it was read: every message at or before it is in `received` or gone. */
  readonly readAt: ParsedId;
}

export type EpochState = 'created' | 'restarted' | 'same';

/**
 * The shared history in Redis Streams, one stream per topic, and the scripts that keep ids,
 * history and live delivery consistent (see `redis-scripts.ts`). Stateless apart from its
 * client: every instance reads the same history.
 */
export class RedisHistory {
  constructor(
    private readonly client: Redis | Cluster,
    private readonly keys: RedisKeys,
    private readonly cluster: boolean,
    private readonly limits: RedisHistoryLimits,
  ) {}

  /** Loads every script into the script cache of every server (every master of a cluster). */
  async loadScripts(): Promise<void> {
    const servers: Array<Redis | Cluster> = this.cluster ? (this.client as Cluster).nodes('master') : [this.client];
    await Promise.all(servers.flatMap((server) => SCRIPTS.map((script) => server.script('LOAD', script.source))));
  }

  /** Records and publishes a message in one atomic script; resolves to its id. */
  async append(message: WireMessage): Promise<string> {
    const keys = this.cluster ? [this.keys.stream(message.topic)] : [this.keys.stream(message.topic), this.keys.lastId];
    const args = [this.keys.channel(message.topic), encodeBody(message), this.limits.maxCount, this.limits.maxAgeMs, this.cluster ? '1' : '0'];
    return String(await PUBLISH_SCRIPT.run(this.client, keys, args));
  }

  /** A position at or before every message not yet published. */
  async position(): Promise<ParsedId> {
    const keys = this.cluster ? [] : [this.keys.lastId];
    const position = parseId(String(await POSITION_SCRIPT.run(this.client, keys, [])));
    if (!position) throw new Error('Redis answered an unreadable position');
    return position;
  }

  /** Checks the run marker against the run ids of the servers (see `EPOCH_SCRIPT`). */
  async checkEpoch(runIds: ReadonlyArray<readonly [string, string]>): Promise<{ state: EpochState; horizon: ParsedId }> {
    const reply = (await EPOCH_SCRIPT.run(this.client, [this.keys.epoch], runIds.flat())) as [EpochState, string];
    const horizon = parseId(reply[1]);
    if (!horizon) throw new Error('Redis answered an unreadable horizon');
    return { state: reply[0], horizon };
  }

  /** Reads each topic's history after its own id. */
  async read(requests: ReadonlyArray<{ readonly topic: string; readonly after: ParsedId }>): Promise<TopicReplay[]> {
    if (requests.length === 0) return [];
    if (!this.cluster) {
      const streams = requests.map((r) => this.keys.stream(r.topic));
      const reply = await this.runReplay([...streams, this.keys.epoch], requests.length, requests.map((r) => r.after));
      return this.interpret(requests, reply);
    }
    // In a cluster each stream lives on its own slot: one script per topic, the epoch on its own.
    const [epoch, ...perTopic] = await Promise.all([
      this.runReplay([this.keys.epoch], 0, []),
      ...requests.map((r) => this.runReplay([this.keys.stream(r.topic)], 1, [r.after])),
    ]);
    return requests.map((request, i) => {
      const reply = perTopic[i]!;
      return this.interpret([request], [reply[0], epoch![1], reply[2]!])[0]!;
    });
  }

  private async runReplay(keys: string[], count: number, after: readonly ParsedId[]): Promise<ReplayReply> {
    return (await REPLAY_SCRIPT.run(this.client, keys, [count, this.limits.maxAgeMs, ...after.map(idText)])) as ReplayReply;
  }

  private interpret(requests: ReadonlyArray<{ topic: string; after: ParsedId }>, reply: ReplayReply): TopicReplay[] {
    const now = Number(reply[0]);
    const horizon = reply[1] ? parseId(reply[1]) : undefined;
    return requests.map((request, i) => {
      const [floorText, entries] = reply[2 + i] as [string, Array<[string, string[]]>];
      const floor = parseId(floorText);
      const after = request.after;
      const reset =
        (floor !== undefined && compareIds(after, floor) < 0) ||
        (horizon !== undefined && compareIds(after, horizon) < 0) ||
        after.ms > now + FUTURE_TOLERANCE_MS;
      return { topic: request.topic, reset, received: readEntries(entries), readAt: { ms: now, seq: 0 } };
    });
  }
}

type ReplayReply = [string, string | null, ...Array<[string, Array<[string, string[]]>]>];

/** Stream entries as received messages, dropping any publication stored twice (a resend). */
function readEntries(entries: ReadonlyArray<[string, string[]]>): Received[] {
  const out: Received[] = [];
  const seen = new Set<string>();
  for (const [id, fields] of entries) {
    const body = fieldValue(fields, 'm');
    const received = body === undefined ? undefined : receive(id, body);
    if (!received) continue;
    const key = `${received.origin}:${received.counter}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(received);
  }
  return out;
}

function fieldValue(fields: readonly string[], name: string): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}
