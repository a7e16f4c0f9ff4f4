import { writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { prng } from '../fuzz.js';
import { until } from '../wait.js';
import { ChaosClient, type Endpoint } from './chaos-client.js';
import { judge, type HistoryLoss, type Phase, type Verdict } from './ledger.js';
import { Publisher } from './publisher.js';
import { clusterRedis, natsJetStream, singleRedis, type RedisUnderTest } from './redis-under-test.js';
import { SampleProcess } from './sample-process.js';
import { ResetProbe } from './diagnostics.js';
import type { Transport } from './stream-connections.js';

export interface ChaosSettings {
  /** Seeds every random choice (clients, topics, drops, faults, delays). `CHAOS_SEED`. */
  readonly seed: number;
  /** How long faults are injected, per configuration. `CHAOS_MS`. */
  readonly durationMs: number;
  /** `CHAOS_CLIENTS` */
  readonly clients: number;
  readonly topics: number;
  readonly instances: number;
  /** Which faults run (`CHAOS_FAULTS`, default all): `clients` (drops), `instances`, `redis`. */
  readonly faults: ReadonlySet<Fault>;
}

export type Fault = 'clients' | 'instances' | 'redis';
const FAULTS: readonly Fault[] = ['clients', 'instances', 'redis'];

function faultsFrom(value: string | undefined): Set<Fault> {
  if (!value) return new Set(FAULTS);
  const faults = value
    .split(',')
    .map((f) => f.trim())
    .filter((f) => f.length > 0);
  for (const fault of faults)
    if (!FAULTS.includes(fault as Fault)) throw new RangeError(`CHAOS_FAULTS: unknown fault "${fault}" (known: ${FAULTS.join(', ')})`);
  return new Set(faults as Fault[]);
}

/** Settings from the environment: `CHAOS_SEED`, `CHAOS_MS`, `CHAOS_CLIENTS`, `CHAOS_FAULTS`. */
export function chaosSettings(env: NodeJS.ProcessEnv = process.env): ChaosSettings {
  const number = (name: string, fallback: number) => {
    const value = env[name];
    if (value === undefined || value === '') return fallback;
    const parsed = Number(value);
    if (!Number.isFinite(parsed) || parsed < 0) throw new RangeError(`${name} must be a non-negative number, got ${value}`);
    return Math.floor(parsed);
  };
  return {
    seed: number('CHAOS_SEED', Math.floor(Math.random() * 2 ** 31)),
    durationMs: number('CHAOS_MS', 32_000),
    clients: number('CHAOS_CLIENTS', 30),
    topics: 6,
    instances: 3,
    faults: faultsFrom(env.CHAOS_FAULTS),
  };
}

export interface ChaosOutcome {
  readonly verdict: Verdict;
  /** One line: clients, publications, deliveries, resets, reconnects and every kind of violation. */
  readonly summary: string;
  /** Empty when the promise held; otherwise the seed and the first findings of each kind. */
  readonly failure: string;
}

const MAX_FINDINGS_SHOWN_PER_KIND = 6;
/** Catching up at the end: no client moving for this long is a stall (see `ChaosRun.caughtUp`). */
const CATCH_UP_STALL_MS = 10_000;
/** Catching up at the end: at most this long in all, however slowly the clients move. */
const CATCH_UP_MAX_MS = 60_000;

/**
 * One chaos run: a Redis deployment, sample instances as child processes, reconnecting SSE and
 * WebSocket clients, a sequence-numbering publisher, and faults in phases:
 *
 * 1. `clients`: clients drop and reconnect (politely or with a TCP reset);
 * 2. `instances`: instances are SIGKILLed and restarted, one at a time, clients still dropping;
 * 3. `redis`: Redis (or one cluster master) is SIGKILLed and restarted empty: history truly lost;
 * 4. `instances-after`, 5. `clients-after`: as 2 and 1, now resuming from before and after the loss.
 *
 * Then the publisher stops, the clients stop dropping, and the run waits (bounded) until every
 * client has caught up before judging what each one received.
 */
export class ChaosRun {
  readonly clients: ChaosClient[] = [];
  readonly instances: SampleProcess[] = [];
  readonly losses: HistoryLoss[] = [];
  readonly phases: Phase[] = [];
  private redis: RedisUnderTest | undefined;
  private publisher: Publisher | undefined;
  private dropping = false;
  private readonly down = new Set<SampleProcess>();
  private instanceKills = 0;
  private droppers: Promise<void> | undefined;
  private readonly notes: string[] = [];
  /** `CHAOS_DEBUG=1`: what Redis and the instance said at each reset (see `diagnostics.ts`). */
  private probe: ResetProbe | undefined;

  constructor(
    readonly kind: 'single' | 'cluster' | 'nats',
    readonly settings: ChaosSettings,
    private readonly log: (line: string) => void = () => undefined,
  ) {}

  /** A random stream of its own per purpose, so that timing in one does not shift the others. */
  private random(purpose: number): () => number {
    return prng((this.settings.seed ^ Math.imul(purpose + 1, 0x9e3779b1)) >>> 0);
  }

  private get endpoints(): Endpoint[] {
    return this.instances.filter((i) => i.running && !this.down.has(i)).map((i) => ({ name: i.name, url: i.url }));
  }

  async run(): Promise<ChaosOutcome> {
    const { settings } = this;
    this.redis = this.kind === 'single' ? await singleRedis() : this.kind === 'cluster' ? await clusterRedis() : await natsJetStream();
    this.log(
      `[${this.kind}] CHAOS_SEED=${settings.seed} CHAOS_MS=${settings.durationMs} CHAOS_CLIENTS=${settings.clients} CHAOS_FAULTS=${[...settings.faults].join(',')}`,
    );
    const topics = await this.redis.chooseTopics(settings.topics);
    const env = { ...this.redis.env, HEARTBEAT_MS: '5000' };
    if (process.env.CHAOS_DEBUG && this.kind !== 'nats') this.probe = new ResetProbe(this.redis.env);
    this.instances.push(...(await Promise.all(Array.from({ length: settings.instances }, (_, i) => SampleProcess.start(`i${i}`, env)))));
    this.log(`[${this.kind}] topics ${topics.join(',')}; instances ${this.instances.map((i) => `${i.name}=:${i.port}`).join(' ')}`);

    this.openClients(topics);
    await until(() => this.clients.every((c) => c.connected), 20_000, 'every client to be connected');

    this.publisher = new Publisher({
      topics,
      endpoints: () => this.endpoints,
      random: this.random(1),
      // About 6 topics x 35/s: some 200 messages a second in all.
      gapMs: [10, 40],
      requestTimeoutMs: 15_000,
    });
    this.publisher.start();
    this.dropping = settings.faults.has('clients');
    this.droppers = this.dropClients(this.random(2));

    const d = settings.durationMs;
    const random = this.random(3);
    const instances = settings.faults.has('instances') ? (deadline: number) => this.killInstances(deadline, random) : this.idle;
    const redis = settings.faults.has('redis') ? (deadline: number) => this.loseRedis(deadline, random) : this.idle;
    await this.phase('clients', 0.2 * d, this.idle);
    await this.phase('instances', 0.25 * d, instances);
    await this.phase('redis', 0.25 * d, redis);
    await this.phase('instances-after', 0.15 * d, instances);
    await this.phase('clients-after', 0.15 * d, this.idle);

    this.dropping = false;
    await this.droppers;
    await this.publisher.stop();
    await this.settle(topics);
    for (const client of this.clients) await client.stop();
    const explain = new Map<unknown, string>();
    if (this.probe) {
      for (const client of this.clients) {
        for (const record of client.records) {
          if (record.kind !== 'reset') continue;
          const text = await this.probe.text(record);
          if (text) explain.set(record, text);
        }
      }
      await this.probe.stop();
    }
    return this.outcome(explain);
  }

  /** Stops everything this run started; safe to call twice, and after a failure half-way. */
  async dispose(): Promise<void> {
    this.dropping = false;
    for (const client of this.clients) await client.stop().catch(() => undefined);
    await this.publisher?.stop().catch(() => undefined);
    await this.probe?.stop().catch(() => undefined);
    for (const instance of this.instances) await instance.stop().catch(() => undefined);
    await this.redis?.stop().catch(() => undefined);
  }

  private openClients(topics: readonly string[]): void {
    const random = this.random(4);
    for (let i = 0; i < this.settings.clients; i++) {
      const transport: Transport = i % 2 === 0 ? 'sse' : 'ws';
      const count = 2 + Math.floor(random() * 3);
      const mine = shuffle([...topics], random)
        .slice(0, count)
        .sort();
      const client = new ChaosClient(`c${String(i).padStart(2, '0')}`, transport, mine, () => this.endpoints, this.random(100 + i));
      const probe = this.probe;
      if (probe) {
        client.onReset = (record) => {
          const name = client.connections.get(record.conn)?.instance;
          probe.probe(record, this.instances.find((i) => i.name === name)?.url);
        };
      }
      this.clients.push(client);
      client.start();
    }
  }

  private async phase(name: string, ms: number, body: (deadline: number) => Promise<void>): Promise<void> {
    const from = performance.now();
    const phase: Phase = { name, from, to: Infinity };
    this.phases.push(phase);
    await body(from + ms);
    phase.to = performance.now();
  }

  private readonly idle = async (deadline: number): Promise<void> => {
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, deadline - performance.now())));
  };

  /** Clients drop at random, some 8 a second in all, a third of them cut with a TCP reset. */
  private async dropClients(random: () => number): Promise<void> {
    while (this.dropping) {
      await new Promise((resolve) => setTimeout(resolve, -Math.log(1 - random()) * 120));
      const client = this.clients[Math.floor(random() * this.clients.length)]!;
      client.drop(random() < 0.35);
    }
  }

  /** One instance at a time: SIGKILL, down a moment, restart on the same port, until `deadline`. */
  private async killInstances(deadline: number, random: () => number): Promise<void> {
    let next = Math.floor(random() * this.instances.length);
    while (performance.now() < deadline) {
      const instance = this.instances[next % this.instances.length]!;
      next += 1;
      this.down.add(instance);
      await instance.kill();
      this.instanceKills += 1;
      await new Promise((resolve) => setTimeout(resolve, 200 + random() * 600));
      await instance.restart();
      this.down.delete(instance);
      await new Promise((resolve) => setTimeout(resolve, 300 + random() * 700));
    }
  }

  /** Redis (or a cluster master) SIGKILLed and restarted empty, at least once, until `deadline`. */
  private async loseRedis(deadline: number, random: () => number): Promise<void> {
    do {
      const loss = await this.redis!.loseHistory(800 + random() * 1_700, (l) => this.losses.push(l));
      this.log(`[${this.kind}] lost ${loss.what} (topics ${[...loss.topics].join(',')}) for ${Math.round(loss.restartedAt - loss.killedAt)} ms`);
      await new Promise((resolve) => setTimeout(resolve, 1_500 + random() * 1_500));
    } while (performance.now() < deadline);
  }

  /** Every client connected again, then caught up with the last acknowledged seq of its topics (bounded). */
  private async settle(topics: readonly string[]): Promise<void> {
    const publisher = this.publisher!;
    const last = new Map(topics.map((t) => [t, publisher.lastAcknowledged(t)]));
    try {
      await until(() => this.clients.every((c) => c.connected), 30_000, 'every client to be connected again');
      await this.caughtUp(last);
    } catch (error) {
      const behind = this.clients.flatMap((c) =>
        c.topics.filter((t) => (c.highest.get(t) ?? 0) < last.get(t)!).map((t) => `${c.name}/${t} at ${c.highest.get(t) ?? 0} of ${last.get(t)}`),
      );
      this.notes.push(`${(error as Error).message}; behind: ${behind.slice(0, 12).join(', ')}${behind.length > 12 ? ` and ${behind.length - 12} more` : ''}`);
      if (process.env.CHAOS_DEBUG) this.notes.push(...(await this.behindDetails(last)));
    }
  }

  /**
   * Waits until every client has reached the last acknowledged seq of each of its topics. A
   * client that stops moving for {@link CATCH_UP_STALL_MS} is left behind (a stall: a resume that
   * never completes, an instance that never recovers); one that is still moving only slowly (the
   * test process, the instances and Redis starved of CPU by other runs on the machine) is given up
   * to {@link CATCH_UP_MAX_MS} in all. A fixed 10 s bound could not tell the two apart.
   */
  private async caughtUp(last: ReadonlyMap<string, number>): Promise<void> {
    const missing = () => this.clients.reduce((sum, c) => sum + c.topics.reduce((n, t) => n + Math.max(0, last.get(t)! - (c.highest.get(t) ?? 0)), 0), 0);
    const start = performance.now();
    let movedAt = start;
    let left = missing();
    while (left > 0) {
      const now = performance.now();
      if (now - movedAt > CATCH_UP_STALL_MS || now - start > CATCH_UP_MAX_MS) {
        throw new Error(
          `timed out waiting until every client reached the last acknowledged seq of each of its topics ` +
            `(${left} seqs to go; no progress for ${Math.round(now - movedAt)} ms, ${Math.round(now - start)} ms in all)`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
      const next = missing();
      if (next < left) movedAt = performance.now();
      left = next;
    }
  }

  /** `CHAOS_DEBUG`: for each client left behind, its connection, where it stands, and each instance's link. */
  private async behindDetails(last: ReadonlyMap<string, number>): Promise<string[]> {
    const now = performance.now();
    const lines: string[] = [];
    for (const c of this.clients) {
      const topics = c.topics.filter((t) => (c.highest.get(t) ?? 0) < last.get(t)!);
      if (topics.length === 0) continue;
      const open = [...c.records].reverse().find((r) => r.kind === 'open');
      const lastMessage = [...c.records].reverse().find((r) => r.kind === 'message');
      const conn = open?.conn;
      const since = conn === undefined ? [] : c.records.filter((r) => r.conn === conn).map((r) => r.kind);
      lines.push(
        `  behind ${c.name} (${c.transport}) ${topics.map((t) => `${t} at ${c.highest.get(t) ?? 0}/${last.get(t)}`).join(' ')}: ` +
          `connected=${c.connected} conn ${conn} to ${open?.kind === 'open' ? open.instance : '?'} opened ${open ? Math.round(now - open.at) : '?'} ms ago ` +
          `(records on it: ${since.length}, ${since.filter((k) => k === 'message').length} messages), last message ${lastMessage ? Math.round(now - lastMessage.at) : '?'} ms ago, ` +
          `failed attempts ${c.failedAttempts}, id ${c.lastId}`,
      );
    }
    for (const instance of this.instances) {
      const stats = await fetchStats(instance.url);
      lines.push(`  ${instance.name}: ${stats}`);
    }
    return lines;
  }

  private outcome(explain: ReadonlyMap<unknown, string> = new Map()): ChaosOutcome {
    const publisher = this.publisher!;
    const verdict = judge(this.clients, publisher, this.losses, this.phases, process.env.CHAOS_DEBUG ? explain : undefined);
    const { counts } = verdict;
    const { published, acknowledged, unknown } = publisher.counts;
    const sse = this.clients.filter((c) => c.transport === 'sse').length;
    const byTransport = (['sse', 'ws'] as const)
      .map((tr) => {
        const of = (kind: string) => verdict.findings.filter((f) => f.kind === kind && f.transport === tr).length;
        return `${tr}: resets=${verdict.resetsByTransport[tr] ?? 0} dup=${of('duplicate')} ooo=${of('out-of-order')} gaps=${of('silent-gap')} unjustified=${of('unjustified-reset')} behind=${of('not-caught-up')}`;
      })
      .join('; ');
    const summary =
      `[${this.kind}] seed=${this.settings.seed} CHAOS_MS=${this.settings.durationMs} faults=${[...this.settings.faults].join('+')}: ` +
      `clients=${this.clients.length} (${sse} sse, ${this.clients.length - sse} ws), ` +
      `published=${published} acknowledged=${acknowledged} unknown=${unknown}, deliveries=${verdict.deliveries}, resets=${verdict.resets} ` +
      `${JSON.stringify(verdict.resetsByPhase)}, reconnects=${verdict.reconnects}, instance kills=${this.instanceKills}, history losses=${this.losses.length}; ` +
      `duplicates=${counts.duplicate} out-of-order=${counts['out-of-order']} order-disagreements=${counts['order-disagreement']} ` +
      `silent-gaps=${counts['silent-gap']} unjustified-resets=${counts['unjustified-reset']} not-caught-up=${counts['not-caught-up']} odd-frames=${counts['odd-frame']} ` +
      `(${byTransport})`;
    if (verdict.findings.length === 0 && this.notes.length === 0) return { verdict, summary, failure: '' };
    // `CHAOS_DUMP=file`: every client's records (what it saw, connection by connection) for a failure's post-mortem.
    if (process.env.CHAOS_DUMP) {
      writeFileSync(
        process.env.CHAOS_DUMP,
        JSON.stringify(
          this.clients.map((c) => ({ name: c.name, transport: c.transport, topics: c.topics, connections: [...c.connections.values()], records: c.records })),
        ),
      );
    }
    const lines = [
      `the delivery promise was broken (${this.kind}); replay with CHAOS_SEED=${this.settings.seed} CHAOS_MS=${this.settings.durationMs} ` +
        `CHAOS_CLIENTS=${this.settings.clients} CHAOS_FAULTS=${[...this.settings.faults].join(',')}`,
      summary,
      ...this.notes,
    ];
    for (const kind of Object.keys(counts) as Array<keyof typeof counts>) {
      const all = verdict.findings.filter((f) => f.kind === kind);
      if (all.length === 0) continue;
      lines.push(`${kind}: ${all.length}`);
      for (const f of all.slice(0, MAX_FINDINGS_SHOWN_PER_KIND)) lines.push(`  - ${f.text}`);
      if (all.length > MAX_FINDINGS_SHOWN_PER_KIND) lines.push(`  … and ${all.length - MAX_FINDINGS_SHOWN_PER_KIND} more`);
    }
    return { verdict, summary, failure: lines.join('\n') };
  }
}

/** An instance's `/stats` (connections and broker link), for diagnostics. */
async function fetchStats(url: string): Promise<string> {
  try {
    const response = await fetch(`${url}/stats`, { signal: AbortSignal.timeout(3_000) });
    const stats = (await response.json()) as { connections?: unknown; broker?: unknown; topicSubscribers?: unknown };
    return JSON.stringify({ connections: stats.connections, broker: stats.broker, topicSubscribers: stats.topicSubscribers });
  } catch (error) {
    return `no stats: ${(error as Error).message}`;
  }
}

function shuffle<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}
