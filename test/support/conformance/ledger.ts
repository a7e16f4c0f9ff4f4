import { isPattern, matchesPattern } from '../../../src/protocol/topics.js';
import assert from 'node:assert/strict';
import type { PushletMessage, PushletService } from '../../../src/index.js';
import { within } from '../wait.js';
import type { StreamRecorder } from './recorder.js';

/**
 * Counting, per topic, what was published against what a client received over one or more
 * connections (a resume chain). Each topic's publications are numbered 1, 2, 3… in the order
 * `publish()` was called, and carry `<topic>#<seq>` as their data, so the check is exact.
 */

export interface TopicTally {
  readonly topic: string;
  /** The numbers the client was owed: from its start position to the last publication. */
  readonly expected: readonly [from: number, to: number];
  /** Distinct expected messages received. */
  readonly received: number;
  /** Owed, never received, and no reset naming the topic came before the message after the gap. */
  readonly missing: readonly number[];
  /** Owed and never received, but a reset naming the topic came in their place. */
  readonly coveredByReset: readonly number[];
  readonly duplicates: readonly number[];
  /** Received after a later message of the same topic. */
  readonly outOfOrder: readonly number[];
  /** Received but not owed: at or before the client's start position, or never published. */
  readonly unexpected: readonly number[];
  /** `pushlet:reset` notices naming the topic, over the whole chain. */
  readonly resets: number;
}

/** A publication that may wait for the backend; its failure surfaces where it is awaited. */
function quiet<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => undefined);
  return promise;
}

export class Ledger {
  private readonly last = new Map<string, number>();
  private readonly pending: Array<Promise<PushletMessage>> = [];

  /** Publishes the next message of `topic` through `pushlet` (not awaited here: see {@link settled}). */
  publish(pushlet: PushletService, topic: string): Promise<PushletMessage> {
    const seq = (this.last.get(topic) ?? 0) + 1;
    this.last.set(topic, seq);
    const published = quiet(pushlet.publish(topic, 'message', `${topic}#${seq}`));
    this.pending.push(published);
    return published;
  }

  /**
   * `rounds` messages on each topic, interleaved (t1#n, t2#n, … then n+1), each awaited before
   * the next: sequential publications keep their order on every broker and through every
   * instance. `via` picks the instance of each publication (by its index).
   */
  async publishRounds(via: (index: number) => PushletService, topics: readonly string[], rounds: number): Promise<void> {
    let index = 0;
    for (let round = 0; round < rounds; round += 1) {
      for (const topic of topics) {
        const pushlet = via(index++);
        try {
          await within(this.publish(pushlet, topic), 20_000, `publish ${topic}`);
        } catch (error) {
          // Names the broker's link: a publication that waits this long waits for the link to recover.
          throw new Error(`${String(error)}; the broker's link: ${JSON.stringify(pushlet.stats().broker)}`, { cause: error });
        }
      }
    }
  }

  /**
   * The same without waiting between publications: all issued in this turn, from one instance,
   * so that each topic's order is its call order.
   */
  publishBurst(pushlet: PushletService, topics: readonly string[], rounds: number): Promise<PushletMessage[]> {
    const all: Array<Promise<PushletMessage>> = [];
    for (let round = 0; round < rounds; round += 1) for (const topic of topics) all.push(this.publish(pushlet, topic));
    return Promise.all(all);
  }

  /** Resolves (bounded) once every publication so far was acknowledged; rejects if one failed. */
  async settled(ms = 20_000): Promise<void> {
    await within(Promise.all(this.pending), ms, `${this.pending.length} publications to be acknowledged`);
  }

  /** How many messages of `topic` were published (issued) so far: the number of the last one. */
  count(topic: string): number {
    return this.last.get(topic) ?? 0;
  }

  /** Per topic, the number of the first message published from now on. */
  nextOf(topics: readonly string[]): Map<string, number> {
    return new Map(topics.map((topic) => [topic, this.count(topic) + 1]));
  }

  /** Waits (bounded) until `recorder` has every topic's last publication. */
  async delivered(recorder: StreamRecorder, topics: readonly string[], ms = 15_000): Promise<void> {
    const done = () => topics.every((topic) => this.count(topic) === 0 || recorder.messagesOf(topic).some((m) => m.seq === this.count(topic)));
    await recorder.waitFor(done, ms, `the last message of ${topics.map((t) => `${t}#${this.count(t)}`).join(', ')}`);
  }

  /**
   * Tallies what the connections of `chain` (in the order they were open) received of `topics`,
   * against what they were owed: from `from` (per topic; default 1, the first message) to the
   * last publication. A gap is covered by a reset only if a reset naming the topic came after the
   * message before the gap and before the message after it.
   */
  tally(chain: readonly StreamRecorder[], topics: readonly string[], from: ReadonlyMap<string, number> = new Map()): TopicTally[] {
    return topics.map((topic) => this.tallyTopic(chain, topic, from.get(topic) ?? 1));
  }

  private tallyTopic(chain: readonly StreamRecorder[], topic: string, from: number): TopicTally {
    const to = this.count(topic);
    const seen = new Set<number>();
    const duplicates: number[] = [];
    const outOfOrder: number[] = [];
    const unexpected: number[] = [];
    const gaps: Array<{ seq: number; covered: boolean }> = [];
    let next = from;
    let highest = from - 1;
    let resetSinceLast = false;
    let resets = 0;
    for (const frame of chain.flatMap((recorder) => recorder.frames)) {
      if (frame.kind === 'reset' && frame.topics.some((named) => named === topic || (isPattern(named) && matchesPattern(named, topic)))) {
        resets += 1;
        resetSinceLast = true;
      }
      if (frame.kind !== 'message' || frame.topic !== topic) continue;
      const seq = frame.seq!;
      if (seq < from || seq > to) unexpected.push(seq);
      else if (seen.has(seq)) duplicates.push(seq);
      else if (seq < highest) outOfOrder.push(seq);
      else {
        for (let gap = next; gap < seq; gap += 1) gaps.push({ seq: gap, covered: resetSinceLast });
        next = seq + 1;
        highest = seq;
        resetSinceLast = false;
      }
      seen.add(seq);
    }
    for (let gap = next; gap <= to; gap += 1) gaps.push({ seq: gap, covered: false });
    const lost = gaps.filter((g) => !seen.has(g.seq));
    return {
      topic,
      expected: [from, to],
      received: [...seen].filter((seq) => seq >= from && seq <= to).length,
      missing: lost.filter((g) => !g.covered).map((g) => g.seq),
      coveredByReset: lost.filter((g) => g.covered).map((g) => g.seq),
      duplicates,
      outOfOrder,
      unexpected,
      resets,
    };
  }
}

/** One line per topic: published vs received, and every kind of fault with the numbers concerned. */
export function describeTallies(tallies: readonly TopicTally[]): string {
  return tallies
    .map((t) => {
      const [from, to] = t.expected;
      const owed = Math.max(0, to - from + 1);
      const list = (name: string, seqs: readonly number[]) => (seqs.length > 0 ? `, ${name} [${seqs.join(',')}]` : '');
      return (
        `${t.topic}: owed ${owed} (#${from}..#${to}), received ${t.received}, resets ${t.resets}` +
        list('missing', t.missing) +
        list('covered by reset', t.coveredByReset) +
        list('twice', t.duplicates) +
        list('out of order', t.outOfOrder) +
        list('not owed', t.unexpected)
      );
    })
    .join('\n');
}

export interface LedgerExpectations {
  /**
   * `none` (default): every owed message, no reset. `allowed`: gaps only where a reset came
   * first. `required`: as `allowed`, and at least one reset naming the topic. Per topic, or one
   * for all.
   */
  resets?: 'none' | 'allowed' | 'required' | ReadonlyMap<string, 'none' | 'allowed' | 'required'>;
}

/**
 * Asserts that nothing published from `from` (per topic) on is missing, even where a reset came:
 * a reset excuses what was published before it was sent, never what a stream was owed since it
 * subscribed (or since the backend came back).
 */
export function assertNothingLostFrom(tallies: readonly TopicTally[], from: ReadonlyMap<string, number>, context = ''): void {
  const lost = tallies.flatMap((t) => [...t.missing, ...t.coveredByReset].filter((seq) => seq >= (from.get(t.topic) ?? 1)).map((seq) => `${t.topic}#${seq}`));
  assert.deepEqual(lost, [], `lost since it was owed everything: ${context}\n${describeTallies(tallies)}`);
}

/**
 * Asserts 0 missing (except where a reset covers them, if allowed), 0 duplicates, 0 out of
 * order and nothing not owed, for every topic; the message names every number concerned.
 */
export function assertLedger(tallies: readonly TopicTally[], expectations: LedgerExpectations = {}, context = ''): void {
  const problems: string[] = [];
  for (const t of tallies) {
    const rule = typeof expectations.resets === 'object' ? (expectations.resets.get(t.topic) ?? 'none') : (expectations.resets ?? 'none');
    if (t.missing.length > 0) problems.push(`${t.topic}: missing without a reset`);
    if (t.duplicates.length > 0) problems.push(`${t.topic}: duplicates`);
    if (t.outOfOrder.length > 0) problems.push(`${t.topic}: out of order`);
    if (t.unexpected.length > 0) problems.push(`${t.topic}: messages not owed`);
    if (rule === 'none' && t.resets > 0) problems.push(`${t.topic}: a reset where none was due`);
    if (rule === 'none' && t.coveredByReset.length > 0) problems.push(`${t.topic}: messages lost`);
    if (rule === 'required' && t.resets === 0) problems.push(`${t.topic}: no reset`);
  }
  assert.deepEqual(problems, [], `${context}\n${describeTallies(tallies)}`);
}
