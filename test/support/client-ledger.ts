import { performance } from 'node:perf_hooks';
import type { ClientMessage, PushletClient } from '../../src/client/index.js';
import type { TestApp } from './app.js';
import { within } from './wait.js';

/**
 * Counting what a {@link PushletClient} receives against what was published, for tests that
 * break its connection: a publisher that numbers each topic's messages 1, 2, 3…, a ledger per
 * client, and {@link judge}, which names every duplicate, reordering and silent gap.
 */

/** `failed`: `publish()` rejected or timed out, so the message may or may not have been recorded. */
export type Fate = 'pending' | 'acknowledged' | 'failed';

export interface Publication {
  readonly topic: string;
  readonly seq: number;
  /** The instance it went through (its URL). */
  readonly via: string;
  /** When `publish()` was called (performance.now()). */
  readonly startedAt: number;
  fate: Fate;
}

const PUBLISH_TIMEOUT_MS = 5_000;
/** The topic of broadcasts. */
export const BROADCAST = '*';

/**
 * Publishes on every topic at a steady rate through the live instances in turn: per topic one
 * message at a time (seq n+1 once n was answered), all topics in parallel, data = the seq. The
 * topic `*` stands for broadcasts (`publishToAll`).
 */
export class SteadyPublisher {
  readonly publications = new Map<string, Publication[]>();
  private running = false;
  private loops: Promise<void>[] = [];
  private turn = 0;

  constructor(
    private readonly topics: readonly string[],
    private readonly targets: () => readonly TestApp[],
    private readonly gapMs: number,
  ) {
    for (const topic of topics) this.publications.set(topic, []);
  }

  start(): void {
    this.running = true;
    this.loops = this.topics.map((topic) => this.run(topic));
  }

  /** Stops publishing; resolves once every publication in flight has settled. */
  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  /** How many publications of `topic` were started so far. */
  count(topic: string): number {
    return this.publications.get(topic)?.length ?? 0;
  }

  private async run(topic: string): Promise<void> {
    const list = this.publications.get(topic)!;
    while (this.running) {
      const targets = this.targets();
      if (targets.length > 0) {
        const target = targets[this.turn++ % targets.length]!;
        const publication: Publication = { topic, seq: list.length + 1, via: target.url, startedAt: performance.now(), fate: 'pending' };
        list.push(publication);
        try {
          const data = String(publication.seq);
          const published = topic === BROADCAST ? target.pushlet.publishToAll('tick', data) : target.pushlet.publish(topic, 'tick', data);
          await within(published, PUBLISH_TIMEOUT_MS, `publish ${topic} #${data}`);
          publication.fate = 'acknowledged';
        } catch {
          publication.fate = 'failed';
        }
      }
      await new Promise((resolve) => setTimeout(resolve, this.gapMs));
    }
  }
}

export interface Received {
  readonly seq: number;
  readonly id: string;
  readonly at: number;
}

export interface SeenReset {
  readonly topics: readonly string[];
  readonly reason: string;
  readonly at: number;
}

/**
 * Everything one client hands its application: each subscription's messages per topic, the
 * broadcasts (from the `message` event), the resets, and when it lost and regained its connection.
 */
export class ClientLedger {
  /** Per topic of the client, and `*` for broadcasts. */
  readonly received = new Map<string, Received[]>();
  readonly resets: SeenReset[] = [];
  /** Messages handed where they do not belong (another topic, another subscription). */
  readonly stray: string[] = [];
  readonly errors: string[] = [];
  /** Each stretch spent without a connection after having had one (`to` is Infinity while it lasts). */
  readonly outages: Array<{ from: number; to: number }> = [];
  private everConnected = false;

  constructor(
    readonly name: string,
    readonly client: PushletClient,
    readonly topics: readonly string[],
  ) {
    for (const topic of this.counted) this.received.set(topic, []);
    client.on('state', (state) => this.stateChanged(state));
    client.on('reset', (reset) => this.resets.push({ ...reset, at: performance.now() }));
    client.on('error', (error) => this.errors.push(error.message));
    client.on('message', (m) => {
      if (m.topic === BROADCAST) this.received.get(BROADCAST)!.push({ seq: Number(m.data), id: m.id, at: performance.now() });
      else if (!topics.includes(m.topic ?? '')) this.stray.push(`message event: ${m.topic} #${m.data}`);
    });
  }

  /** The topics counted: the client's own and broadcasts. */
  get counted(): readonly string[] {
    return [...this.topics, BROADCAST];
  }

  /** Connections lost after having been connected (an SSE client changing its topics counts too). */
  get drops(): number {
    return this.outages.length;
  }

  /**
   * Subscribes the first topic on its own and the others as one subscription (both ways an
   * application does it), and resolves once the server confirmed them all.
   */
  subscribe(): Promise<unknown> {
    const groups = [this.topics.slice(0, 1), this.topics.slice(1)].filter((group) => group.length > 0);
    return Promise.all(groups.map((group) => this.client.subscribe(group, (m) => this.record(group, m)).ready));
  }

  private record(group: readonly string[], message: ClientMessage): void {
    const topic = message.topic ?? '';
    const list = this.received.get(topic);
    if (!group.includes(topic) || !list) {
      this.stray.push(`subscription ${group.join(',')}: ${topic} #${message.data}`);
      return;
    }
    list.push({ seq: Number(message.data), id: message.id, at: performance.now() });
  }

  private stateChanged(state: string): void {
    const now = performance.now();
    const open = this.outages.at(-1);
    if (state === 'connected') {
      this.everConnected = true;
      if (open && open.to === Infinity) open.to = now;
    } else if (this.everConnected && (!open || open.to !== Infinity)) {
      this.outages.push({ from: now, to: Infinity });
    }
  }
}

/** Acknowledged publications of `ledger`'s topics that have not arrived and that no reset excuses. */
export function missing(ledger: ClientLedger, publisher: SteadyPublisher): Publication[] {
  const out: Publication[] = [];
  for (const topic of ledger.counted) {
    const got = new Set(ledger.received.get(topic)!.map((r) => r.seq));
    for (const p of publisher.publications.get(topic) ?? []) {
      if (p.fate === 'acknowledged' && !got.has(p.seq) && !excused(ledger, p)) out.push(p);
    }
  }
  return out;
}

/**
 * A missing publication is excused only by a reset that names its topic and that the client
 * received after `publish()` was called for it.
 */
function excused(ledger: ClientLedger, p: Publication): boolean {
  return ledger.resets.some((reset) => reset.topics.includes(p.topic) && p.startedAt < reset.at);
}

/**
 * Every problem with what `ledger`'s client got, as sentences (none: all is well). Per topic
 * (broadcasts counted as the topic `*`):
 * - each message arrived under a topic and subscription it belongs to, and carries a seq that
 *   was published on that topic;
 * - seqs strictly increase: no seq twice (duplicate), none after a higher one (reordering);
 * - every acknowledged publication arrived, unless excused by a reset (see {@link missing});
 *   a failed one (`publish()` rejected or timed out) may be missing, and if it arrived its
 *   place is checked like any other.
 * Call it after the publisher has stopped and the client has had time to catch up.
 */
export function judge(ledger: ClientLedger, publisher: SteadyPublisher): string[] {
  const problems = ledger.stray.map((s) => `${ledger.name}: stray ${s}`);
  for (const topic of ledger.counted) {
    const published = publisher.publications.get(topic) ?? [];
    const seen = new Set<number>();
    let highest = 0;
    for (const { seq } of ledger.received.get(topic)!) {
      if (!Number.isInteger(seq) || seq < 1 || seq > published.length) problems.push(`${ledger.name} ${topic}: #${seq} was never published`);
      else if (seen.has(seq)) problems.push(`${ledger.name} ${topic}: duplicate #${seq} (after #${highest})`);
      else if (seq < highest) problems.push(`${ledger.name} ${topic}: #${seq} arrived after #${highest}`);
      seen.add(seq);
      highest = Math.max(highest, seq);
    }
  }
  const gaps = missing(ledger, publisher);
  if (gaps.length > 0) {
    problems.push(
      `${ledger.name}: ${gaps.length} acknowledged messages never arrived, no reset excusing them: ${gaps
        .slice(0, 10)
        .map((p) => `${p.topic} #${p.seq}`)
        .join(', ')}`,
    );
  }
  return problems;
}

/**
 * Publications of `ledger`'s topics started while its client was disconnected (the ones a resume
 * must replay), in its outages from index `fromOutage` on.
 */
export function publishedWhileAway(ledger: ClientLedger, publisher: SteadyPublisher, fromOutage = 0): number {
  const outages = ledger.outages.slice(fromOutage);
  let count = 0;
  for (const topic of ledger.counted) {
    for (const p of publisher.publications.get(topic) ?? []) {
      if (outages.some((o) => p.startedAt > o.from && p.startedAt < o.to)) count += 1;
    }
  }
  return count;
}
