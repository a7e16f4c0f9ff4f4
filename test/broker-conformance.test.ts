import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import type { PushletModuleOptions, PushletService } from '../src/index.js';
import { startApp, type TestApp } from './support/app.js';
import { FIXTURES, type Backend } from './support/conformance/brokers.js';
import { assertLedger, assertNothingLostFrom, Ledger } from './support/conformance/ledger.js';
import { parsePayload, StreamRecorder } from './support/conformance/recorder.js';
import { within } from './support/wait.js';

/**
 * The broker contract, run against every broker of FIXTURES through the public API only:
 * `PushletModule.forRoot`, `PushletService.publish()` and `PushletService.stream()`. Per client
 * and topic it counts what was published against what was received: every owed message once, in
 * per-topic order, or a `pushlet:reset` naming the topic before the message after the gap.
 * Adding a broker means adding a fixture (test/support/conformance/brokers.ts), not a test.
 */

const NEEDS_DISTRIBUTED = { skip: 'the broker is not distributed (one instance only)' };
const NEEDS_FAILURES = { skip: 'the broker cannot fail (no outage to make)' };

/**
 * The rule of docs/protocol.md "Resume": a resume that cannot be continued names its reset topics in
 * `pushlet:connected` (`"reset":{"topics":[…],"reason":"…"}`), the same topics as the
 * `pushlet:reset` frames that follow; `concerned` must be among them (a broker may name more
 * where one id places every topic).
 */
async function assertConnectedNamesReset(recorder: StreamRecorder, concerned: readonly string[]): Promise<void> {
  await recorder.waitFor(() => concerned.every((topic) => recorder.resetsOf(topic).length > 0), 10_000, `a pushlet:reset for ${concerned.join(', ')}`);
  const connected = recorder.connectedFrame!;
  const data = JSON.parse(connected.data) as { topics?: unknown; reset?: { topics?: unknown; reason?: unknown } };
  assert.deepEqual(data.topics, [...recorder.topics], 'pushlet:connected names the topics');
  assert.ok(data.reset, `pushlet:connected carries "reset": ${recorder.describe()}`);
  const named = [...(data.reset.topics as string[])].sort();
  for (const topic of concerned) assert.ok(named.includes(topic), `${topic} among the reset topics of ${connected.data}`);
  const following = [...new Set(recorder.resets.flatMap((r) => r.topics))].sort();
  assert.deepEqual(named, following, `the topics of pushlet:connected are those of the resets: ${recorder.describe()}`);
  assert.equal(typeof data.reset.reason, 'string');
  assert.ok((data.reset.reason as string).length > 0, 'a reason');
}

/** The `from` map of a client that resumes after `recorder`'s first `count` messages (per topic: the next number). */
function positionAfter(recorder: StreamRecorder, count: number, topics: readonly string[]): Map<string, number> {
  const seen = recorder.messages.slice(0, count);
  return new Map(topics.map((topic) => [topic, Math.max(0, ...seen.filter((m) => m.topic === topic).map((m) => m.seq!)) + 1]));
}

for (const fixture of FIXTURES) {
  describe(`broker conformance: ${fixture.name}`, () => {
    let backend: Backend;
    const apps: TestApp[] = [];
    const recorders: StreamRecorder[] = [];

    before(async () => {
      backend = await fixture.setUp();
    });
    afterEach(async () => {
      for (const recorder of recorders.splice(0)) recorder.close();
      for (const app of apps.splice(0)) await app.close();
      // A test that failed half-way may have left the backend down.
      await backend.restore();
    });
    after(async () => {
      await backend?.tearDown();
    });

    async function app(options: PushletModuleOptions = backend.pushletOptions()): Promise<TestApp> {
      const started = await startApp({ heartbeatInterval: 60_000, ...options });
      apps.push(started);
      return started;
    }

    function open(t: TestApp, topics: readonly string[], lastEventId?: string, rewind?: number): StreamRecorder {
      const recorder = StreamRecorder.open(t.pushlet, topics, lastEventId, rewind);
      recorders.push(recorder);
      return recorder;
    }

    /**
     * Opens a stream (resuming after `lastEventId` when given) until one is served: a stream that
     * fails cleanly (503: the backend cannot be read yet) is opened again with the same id, as a
     * client would. Resolves once `served` holds for the last stream; returns every stream opened
     * (all failed but the last).
     */
    async function openUntilServed(
      t: TestApp,
      topics: readonly string[],
      lastEventId: string | undefined,
      served: (recorder: StreamRecorder) => boolean = (r) => r.connectedFrame !== undefined,
      ms = 20_000,
      rewind?: number,
    ): Promise<StreamRecorder[]> {
      const deadline = Date.now() + ms;
      const attempts: StreamRecorder[] = [];
      for (;;) {
        const recorder = open(t, topics, lastEventId, rewind);
        attempts.push(recorder);
        await recorder.waitFor(() => served(recorder) || recorder.ended, Math.max(1, deadline - Date.now()), 'the stream to be served');
        if (!recorder.ended) return attempts;
        assert.ok(recorder.failedCleanly, `a stream may fail only cleanly (503): ${recorder.describe()}`);
        if (Date.now() > deadline) assert.fail(`no stream served within ${ms} ms: ${attempts.map((a) => a.describe()).join('\n')}`);
        // A client's reconnection backoff, short.
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }

    /** A stream opened while the backend is away may be refused, cleanly; then the client comes back. */
    async function servedOrReopened(t: TestApp, recorder: StreamRecorder, ctx: { diagnostic(message: string): void }): Promise<StreamRecorder> {
      await recorder.waitFor(() => recorder.connectedFrame !== undefined || recorder.ended, 20_000, 'pushlet:connected or a refusal');
      if (!recorder.ended) return recorder;
      assert.ok(recorder.failedCleanly, `a stream may fail only cleanly (503): ${recorder.describe()}`);
      ctx.diagnostic(`refused, opened again: ${recorder.describe()}`);
      return (await openUntilServed(t, recorder.topics, recorder.lastEventId)).at(-1)!;
    }

    it('1. order and once: interleaved publications on several topics reach a subscriber each once, in per-topic order', async () => {
      const t = await app();
      const topics = await backend.topics(3);
      const all = open(t, topics);
      const one = open(t, [topics[1]!]);
      await all.connected();
      await one.connected();
      const ledger = new Ledger();
      await ledger.publishRounds(() => t.pushlet, topics, 10);
      // Concurrent publications from one instance keep each topic's call order.
      await within(ledger.publishBurst(t.pushlet, topics, 20), 20_000, 'a burst of publications');
      await ledger.publishRounds(() => t.pushlet, topics, 5);
      await ledger.delivered(all, topics);
      await ledger.delivered(one, [topics[1]!]);

      assertLedger(ledger.tally([all], topics), {}, 'the subscriber of every topic');
      assertLedger(ledger.tally([one], [topics[1]!]), {}, `the subscriber of ${topics[1]} alone`);
      assert.deepEqual(
        one.messages.filter((m) => m.topic !== topics[1]).map((m) => m.data),
        [],
        'nothing of the topics it did not subscribe to',
      );
      assert.equal(new Set(all.messages.map((m) => m.id)).size, all.messages.length, 'every message of a connection has an id of its own');
    });

    it('2. exact resume: after the last id received, exactly the missed messages in order, then live ones, no reset', async () => {
      const t = await app();
      const topics = await backend.topics(3);
      const ledger = new Ledger();
      const first = open(t, topics);
      await first.connected();
      await ledger.publishRounds(() => t.pushlet, topics, 4);
      await ledger.delivered(first, topics);
      const lastId = first.resumeId;
      first.close();

      await ledger.publishRounds(() => t.pushlet, topics, 5);
      const missed = ledger.tally([first], topics).reduce((sum, tally) => sum + tally.missing.length, 0);
      const second = open(t, topics, lastId);
      const connected = await second.connected();
      await ledger.delivered(second, topics);
      assert.equal(second.messages.length, missed, `the missed messages replayed, none else: ${second.describe()}`);
      await ledger.publishRounds(() => t.pushlet, topics, 3);
      await ledger.delivered(second, topics);

      assertLedger(ledger.tally([first, second], topics), {}, `resumed from ${lastId}: ${second.describe()}`);
      assert.equal((JSON.parse(connected.data) as { reset?: unknown }).reset, undefined, 'an exact resume names no reset in pushlet:connected');
    });

    it('2b. exact resume from an earlier id of the stream and from the id of pushlet:connected', async () => {
      const t = await app();
      const topics = await backend.topics(2);
      const ledger = new Ledger();
      const first = open(t, topics);
      const connectedId = (await first.connected()).id;
      await ledger.publishRounds(() => t.pushlet, topics, 5);
      await ledger.delivered(first, topics);
      first.close();

      // The id handed with the 3rd message: everything after it is owed again.
      const fromThird = open(t, topics, first.messages[2]!.id);
      // The id of pushlet:connected: a client that dropped before its first message.
      const fromConnected = open(t, topics, connectedId);
      await ledger.publishRounds(() => t.pushlet, topics, 2);
      for (const recorder of [fromThird, fromConnected]) await ledger.delivered(recorder, topics);

      assertLedger(ledger.tally([fromThird], topics, positionAfter(first, 3, topics)), {}, `from the 3rd message's id: ${fromThird.describe()}`);
      assertLedger(ledger.tally([fromConnected], topics), {}, `from the connected id: ${fromConnected.describe()}`);
    });

    it('3. trimmed history: a resume from before the window gets pushlet:reset for that topic before anything later, then continues', async () => {
      const t = await app(backend.pushletOptions({ maxCount: 5 }));
      const [hot, calm] = await backend.topics(2);
      const topics = [hot!, calm!];
      const ledger = new Ledger();
      const first = open(t, topics);
      await first.connected();
      await ledger.publishRounds(() => t.pushlet, topics, 2);
      await ledger.delivered(first, topics);
      const lastId = first.resumeId;
      first.close();

      // hot: 12 more, of which history keeps the last 5; calm: 2 more, all kept.
      await ledger.publishRounds(() => t.pushlet, [hot!], 12);
      await ledger.publishRounds(() => t.pushlet, [calm!], 2);
      const second = open(t, topics, lastId);
      await second.connected();
      await ledger.publishRounds(() => t.pushlet, topics, 2);
      await ledger.delivered(second, topics);

      const timeline = second.describe();
      const reset = second.frames.findIndex((f) => f.kind === 'reset' && f.topics.includes(hot!));
      const firstHot = second.frames.findIndex((f) => f.kind === 'message' && f.topic === hot);
      assert.ok(reset >= 0, `a pushlet:reset naming ${hot}: ${timeline}`);
      assert.ok(reset < firstHot, `the reset before any later message of ${hot}: ${timeline}`);
      // calm's history is whole: replayed exactly, or (where one id places every topic, so a
      // restarted topic restarts them all) reset too, but never a silent gap.
      assertLedger(
        ledger.tally([first, second], topics),
        {
          resets: new Map([
            [hot!, 'required'],
            [calm!, 'allowed'],
          ]),
        },
        `resumed from ${lastId}: ${timeline}`,
      );
    });

    it('4. an unknown or malformed id: pushlet:reset for every topic, then live messages', async () => {
      const t = await app();
      const topics = await backend.topics(2);
      const ids = {
        malformed: 'not an id',
        'too long': '1'.repeat(300),
        'non-ASCII': 'é-0',
        'ahead of every clock': '99999999999999-0',
        'a cursor no broker wrote': 'c1_zz.zz_zz_zz',
      };
      const ledger = new Ledger();
      await ledger.publishRounds(() => t.pushlet, topics, 2);
      const streams = Object.entries(ids).map(([name, id]) => ({ name, recorder: open(t, topics, id) }));
      for (const { recorder } of streams) await recorder.connected();
      const from = ledger.nextOf(topics);
      await ledger.publishRounds(() => t.pushlet, topics, 3);
      for (const { name, recorder } of streams) {
        await ledger.delivered(recorder, topics);
        const timeline = `${name}: ${recorder.describe()}`;
        for (const topic of topics) {
          const reset = recorder.frames.findIndex((f) => f.kind === 'reset' && f.topics.includes(topic));
          const message = recorder.frames.findIndex((f) => f.kind === 'message');
          assert.ok(reset >= 0 && reset < message, `a pushlet:reset naming ${topic} before any message: ${timeline}`);
        }
        // Messages from before the connection are not owed (and a replay of them would hide the
        // gap); every one published after pushlet:connected is.
        const tallies = ledger.tally([recorder], topics, from);
        assertLedger(tallies, { resets: 'required' }, timeline);
        assertNothingLostFrom(tallies, from, timeline);
      }
    });

    it(
      '5. history lost (backend killed and restarted empty) with clients live, resuming and to resume: a reset, never a silent gap, no duplicate',
      fixture.canFail ? {} : NEEDS_FAILURES,
      async (ctx) => {
        const t = await app();
        const topics = await backend.topics(2);
        const ledger = new Ledger();
        const live = open(t, topics);
        await live.connected();
        await ledger.publishRounds(() => t.pushlet, topics, 1);
        await ledger.delivered(live, topics);
        // The cursor of a client that dropped after the first round.
        const cursor = live.resumeId;
        const afterCursor = ledger.nextOf(topics);
        await ledger.publishRounds(() => t.pushlet, topics, 3);
        await ledger.delivered(live, topics);

        // A resume in flight as the backend dies: opened in the same turn as the kill.
        const inFlight = open(t, topics, cursor);
        await backend.outage();
        await backend.restore();
        // Acknowledged: the instance is back on the backend.
        const sinceBack = ledger.nextOf(topics);
        await ledger.publishRounds(() => t.pushlet, topics, 1);
        // The client that dropped comes back with its cursor from before the loss: told for every topic.
        const late = (await openUntilServed(t, topics, cursor, (r) => topics.every((topic) => r.resetsOf(topic).length > 0))).at(-1)!;
        const resumed = await servedOrReopened(t, inFlight, ctx);
        const sinceServed = ledger.nextOf(topics);
        await ledger.publishRounds(() => t.pushlet, topics, 3);

        for (const [name, recorder, from, owedFrom] of [
          ['live through the loss', live, undefined, sinceBack],
          ['resumed as the backend died', resumed, afterCursor, sinceServed],
          ['resumed after the loss', late, afterCursor, sinceServed],
        ] as const) {
          await ledger.delivered(recorder, topics);
          const tallies = ledger.tally([recorder], topics, from);
          assertLedger(tallies, { resets: 'required' }, `${name}: ${recorder.describe()}`);
          // What was published once the backend was back (for the live one) or once the resume was
          // served is owed in full.
          assertNothingLostFrom(tallies, owedFrom, `${name}: ${recorder.describe()}`);
        }
      },
    );

    it(
      '6. resume during the outage: the stream fails cleanly or delivers exactly; publications made during the outage are delivered once, in order, after it returns',
      fixture.canFail ? {} : NEEDS_FAILURES,
      async (ctx) => {
        const t = await app();
        const topics = await backend.topics(2);
        const ledger = new Ledger();
        const live = open(t, topics);
        const first = open(t, topics);
        await live.connected();
        await first.connected();
        await ledger.publishRounds(() => t.pushlet, topics, 3);
        await ledger.delivered(first, topics);
        const cursor = first.resumeId;
        first.close();

        await backend.outage();
        const during = ledger.nextOf(topics);
        // Published while the backend is down: publish() waits for it (not awaited here).
        for (let round = 0; round < 3; round += 1) for (const topic of topics) ledger.publish(t.pushlet, topic);
        const resumedDuring = open(t, topics, cursor);
        const freshDuring = open(t, topics);
        // Answered (pushlet:connected), refused, or held until the backend returns: all three are
        // fine, so this wait is bounded and never fails.
        const answered = (r: StreamRecorder) => r.connectedFrame !== undefined || r.ended;
        await Promise.all([resumedDuring, freshDuring].map((r) => r.waitFor(() => answered(r), 3_000, 'an answer during the outage').catch(() => undefined)));
        // Publications made during the outage are owed in full to every stream subscribed while
        // the backend was down: the live one, and those answered with pushlet:connected.
        const subscribedDuring = [live, resumedDuring, freshDuring].filter((r) => r.connectedFrame !== undefined && !r.ended);
        ctx.diagnostic(`during the outage: resumed ${resumedDuring.describe()}; new ${freshDuring.describe()}`);
        await backend.restore();
        // A resume refused (cleanly) comes back with the same id; a new stream refused was never owed anything.
        const resumed = await servedOrReopened(t, resumedDuring, ctx);
        await freshDuring.waitFor(() => freshDuring.connectedFrame !== undefined || freshDuring.ended, 20_000, 'pushlet:connected or a refusal');
        if (freshDuring.ended) assert.ok(freshDuring.failedCleanly, `a stream may fail only cleanly (503): ${freshDuring.describe()}`);
        await ledger.settled();
        await ledger.publishRounds(() => t.pushlet, topics, 2);

        const checked: Array<[string, StreamRecorder, Map<string, number> | undefined]> = [
          ['live', live, undefined],
          ['resumed', resumed, during],
        ];
        if (!freshDuring.ended) checked.push(['new during the outage', freshDuring, during]);
        for (const [name, recorder, from] of checked) {
          await ledger.delivered(recorder, topics);
          // Resets are allowed (the backend came back empty); never a silent gap.
          const tallies = ledger.tally([recorder], topics, from);
          assertLedger(tallies, { resets: 'allowed' }, `${name}: ${recorder.describe()}`);
          if (subscribedDuring.includes(recorder)) assertNothingLostFrom(tallies, during, `${name}, subscribed during the outage: ${recorder.describe()}`);
        }
      },
    );

    it(
      '7. subscriptions made as the backend comes back (same turn as the restart, several topics) get everything published after they subscribed, once, in order',
      fixture.canFail ? {} : NEEDS_FAILURES,
      async (ctx) => {
        const t = await app();
        const topics = await backend.topics(4);
        const ledger = new Ledger();
        const first = open(t, topics.slice(0, 2));
        await first.connected();
        await ledger.publishRounds(() => t.pushlet, topics, 2);
        await ledger.delivered(first, first.topics);
        const cursor = first.resumeId;
        const afterCursor = ledger.nextOf(first.topics);
        first.close();

        await backend.outage();
        const back = backend.restore();
        // In the same turn as the restart: one stream per topic, one on all of them, one resuming.
        const opened = [...topics.map((topic) => open(t, [topic])), open(t, topics), open(t, first.topics, cursor)];
        await back;
        // Right after the backend is back, while the instance is still finding it.
        opened.push(open(t, topics), open(t, first.topics, cursor));
        const streams: StreamRecorder[] = [];
        for (const recorder of opened) streams.push(await servedOrReopened(t, recorder, ctx));
        const from = ledger.nextOf(topics);
        await within(ledger.publishBurst(t.pushlet, topics, 5), 20_000, 'a burst once the backend is back');
        await ledger.publishRounds(() => t.pushlet, topics, 2);

        for (const recorder of streams) {
          await ledger.delivered(recorder, recorder.topics);
          // A resume from before the loss may be reset; nothing published since it subscribed may be missing.
          const tallies = ledger.tally([recorder], recorder.topics, recorder.lastEventId === undefined ? from : afterCursor);
          assertLedger(tallies, { resets: 'allowed' }, `subscribed as the backend came back: ${recorder.describe()}`);
          assertNothingLostFrom(tallies, from, `subscribed as the backend came back: ${recorder.describe()}`);
        }
      },
    );

    it(
      "8. two instances: publish on A, subscribe on B; resume on B with the id A's stream handed out",
      fixture.distributed ? {} : NEEDS_DISTRIBUTED,
      async () => {
        const options = backend.pushletOptions();
        const a = await app(options);
        const b = await app(options);
        const topics = await backend.topics(3);
        const ledger = new Ledger();
        const onB = open(b, topics);
        const onA = open(a, topics);
        await onB.connected();
        await onA.connected();
        await ledger.publishRounds(() => a.pushlet, topics, 5);
        await ledger.delivered(onB, topics);
        await ledger.delivered(onA, topics);
        assertLedger(ledger.tally([onB], topics), {}, `subscribed on B: ${onB.describe()}`);

        const lastId = onA.resumeId;
        onA.close();
        await ledger.publishRounds(() => a.pushlet, topics, 4);
        const resumedOnB = open(b, topics, lastId);
        await resumedOnB.connected();
        const instances: PushletService[] = [a.pushlet, b.pushlet];
        await ledger.publishRounds((i) => instances[i % 2]!, topics, 3);
        await ledger.delivered(resumedOnB, topics);
        await ledger.delivered(onB, topics);
        assertLedger(ledger.tally([onA, resumedOnB], topics), {}, `resumed on B from A's ${lastId}: ${resumedOnB.describe()}`);
        assertLedger(ledger.tally([onB], topics), {}, `subscribed on B all along: ${onB.describe()}`);
      },
    );

    /** Topics under one fresh first segment, a pattern of them, and topics it must not match. */
    let patternRuns = 0;
    async function patternTopics(count: number) {
      patternRuns += 1;
      const root = `pat${patternRuns}-${(await backend.topics(1))[0]}`;
      const topics = Array.from({ length: count }, (_, i) => `${root}/${i + 1}`);
      return { pattern: `${root}/*`, topics, decoys: [`${root}/1/deeper`, `${root}x/1`, root] };
    }

    it('P1. a pattern gets every message of its topics once, in per-topic order, and nothing else (overlapping a topic: still once)', async (ctx) => {
      if (!fixture.patterns) {
        const t = await app();
        assert.throws(() => t.pushlet.stream(['a/*']), /not available with this broker/, 'a clear refusal, before any stream');
        ctx.diagnostic('pattern subscriptions are refused by this broker (tested)');
        return;
      }
      const options = backend.pushletOptions();
      const a = await app(options);
      const b = fixture.distributed ? await app(options) : a;
      const { pattern, topics, decoys } = await patternTopics(3);
      const ledger = new Ledger();
      const onB = open(b, [pattern]);
      const overlapping = open(b, [pattern, topics[0]!]);
      await onB.connected();
      await overlapping.connected();
      const instances = [a.pushlet, b.pushlet];
      await ledger.publishRounds((i) => instances[i % 2]!, [...topics, ...decoys], 6);
      await within(ledger.publishBurst(a.pushlet, topics, 10), 20_000, 'a burst of publications');
      for (const recorder of [onB, overlapping]) {
        await ledger.delivered(recorder, topics);
        assertLedger(ledger.tally([recorder], topics), {}, `${recorder.topics.join(' + ')}: ${recorder.describe()}`);
        assert.deepEqual(
          recorder.messages.filter((m) => !topics.includes(m.topic!)).map((m) => m.data),
          [],
          'nothing of the topics the pattern does not match',
        );
      }
    });

    it('P2. a pattern resumed (on the other instance) from the last id gets exactly what it missed, then live messages', async () => {
      if (!fixture.patterns) return;
      const options = backend.pushletOptions();
      const a = await app(options);
      const b = fixture.distributed ? await app(options) : a;
      const { pattern, topics, decoys } = await patternTopics(3);
      const ledger = new Ledger();
      const first = open(a, [pattern]);
      await first.connected();
      await ledger.publishRounds(() => a.pushlet, topics, 3);
      await ledger.delivered(first, topics);
      const lastId = first.resumeId;
      first.close();
      // Missed: on topics it had messages of, on one it never had, and on decoys.
      const fresh = `${pattern.slice(0, -1)}late`;
      await ledger.publishRounds(() => b.pushlet, [...topics, fresh, ...decoys], 4);
      const second = open(b, [pattern], lastId);
      const connected = await second.connected();
      await ledger.publishRounds(() => a.pushlet, [...topics, fresh], 2);
      await ledger.delivered(second, [...topics, fresh]);
      assertLedger(ledger.tally([first, second], [...topics, fresh]), {}, `resumed from ${lastId}: ${second.describe()}`);
      assert.equal((JSON.parse(connected.data) as { reset?: unknown }).reset, undefined, 'an exact resume names no reset');
    });

    it(
      'P3. history lost with a pattern live and one to resume: a reset naming the pattern, never a silent gap, no duplicate',
      fixture.canFail && fixture.patterns ? {} : { skip: 'the broker cannot fail, or has no patterns' },
      async () => {
        const t = await app();
        const { pattern, topics } = await patternTopics(2);
        const ledger = new Ledger();
        const live = open(t, [pattern]);
        await live.connected();
        await ledger.publishRounds(() => t.pushlet, topics, 2);
        await ledger.delivered(live, topics);
        const cursor = live.resumeId;
        const afterCursor = ledger.nextOf(topics);
        await ledger.publishRounds(() => t.pushlet, topics, 2);
        await ledger.delivered(live, topics);
        await backend.outage();
        await backend.restore();
        const sinceBack = ledger.nextOf(topics);
        await ledger.publishRounds(() => t.pushlet, topics, 1);
        const late = (await openUntilServed(t, [pattern], cursor, (r) => r.resets.length > 0)).at(-1)!;
        const sinceServed = ledger.nextOf(topics);
        await ledger.publishRounds(() => t.pushlet, topics, 3);
        for (const [name, recorder, from, owedFrom] of [
          ['live through the loss', live, undefined, sinceBack],
          ['resumed after the loss', late, afterCursor, sinceServed],
        ] as const) {
          await ledger.delivered(recorder, topics);
          const tallies = ledger.tally([recorder], topics, from);
          assertLedger(tallies, { resets: 'allowed' }, `${name}: ${recorder.describe()}`);
          assertNothingLostFrom(tallies, owedFrom, `${name}: ${recorder.describe()}`);
        }
        assert.ok(
          late.resets.some((reset) => reset.topics.includes(pattern)),
          `the resumed pattern is told: ${late.describe()}`,
        );
      },
    );

    it('9a. pushlet:connected names the reset topics of an unknown or malformed id', async () => {
      const t = await app();
      const topics = await backend.topics(2);
      for (const id of ['not an id', '99999999999999-0']) await assertConnectedNamesReset(open(t, topics, id), topics);
    });

    it('9b. pushlet:connected names the reset topic of a resume from before the history window', async () => {
      const t = await app(backend.pushletOptions({ maxCount: 3 }));
      const [hot, calm] = await backend.topics(2);
      const ledger = new Ledger();
      const first = open(t, [hot!, calm!]);
      await first.connected();
      await ledger.publishRounds(() => t.pushlet, [hot!, calm!], 1);
      await ledger.delivered(first, [hot!, calm!]);
      const lastId = first.resumeId;
      first.close();
      await ledger.publishRounds(() => t.pushlet, [hot!], 6);
      await assertConnectedNamesReset(open(t, [hot!, calm!], lastId), [hot!]);
    });

    it('9c. pushlet:connected names the reset topics of a resume from before the backend lost its history', fixture.canFail ? {} : NEEDS_FAILURES, async () => {
      const t = await app();
      const topics = await backend.topics(2);
      const ledger = new Ledger();
      const first = open(t, topics);
      await first.connected();
      await ledger.publishRounds(() => t.pushlet, topics, 2);
      await ledger.delivered(first, topics);
      const cursor = first.messages[0]!.id;
      await backend.outage();
      await backend.restore();
      await ledger.publishRounds(() => t.pushlet, topics, 1);
      const served = (await openUntilServed(t, topics, cursor)).at(-1)!;
      await assertConnectedNamesReset(served, topics);
    });

    /** The sequence numbers of `topic`'s messages among `messages` (data `<topic>#<seq>`), in order. */
    function seqs(messages: ReadonlyArray<{ data: string }>, topic: string): number[] {
      return messages.flatMap((m) => {
        const parsed = parsePayload(m.data);
        return parsed && parsed.topic === topic ? [parsed.seq] : [];
      });
    }

    it('10. history (PushletBroker.tail): an empty topic, a limit over what is kept, pages before an id over the whole history with no gap or duplicate, after a trim', async () => {
      const t = await app(backend.pushletOptions({ maxCount: 8 }));
      const [topic, other, empty] = await backend.topics(3);
      const ledger = new Ledger();
      assert.deepEqual(await t.pushlet.history(empty!, { limit: 5 }), [], 'an empty topic');
      await ledger.publishRounds(() => t.pushlet, [topic!, other!], 5);
      assert.deepEqual(seqs(await t.pushlet.history(topic!, { limit: 100 }), topic!), [1, 2, 3, 4, 5], 'a limit larger than history: all of it, oldest first');
      assert.deepEqual(seqs(await t.pushlet.history(topic!, { limit: 2 }), topic!), [4, 5], 'the newest two');
      // Past history.maxCount (8): the oldest are trimmed.
      await ledger.publishRounds(() => t.pushlet, [topic!], 7);
      const newest = await t.pushlet.history(topic!, { limit: 100 });
      assert.deepEqual(seqs(newest, topic!), [5, 6, 7, 8, 9, 10, 11, 12], 'after the trim: what is kept');
      assert.ok(
        newest.every((m) => m.topic === topic && m.event === 'message'),
        'only the topic asked for',
      );
      // Pages of 3 back to the start: every kept message once.
      const seen: number[] = [];
      let before: string | undefined;
      for (let page = 0; page < 10; page++) {
        const messages = await t.pushlet.history(topic!, { limit: 3, ...(before !== undefined && { before }) });
        if (messages.length === 0) break;
        assert.ok(messages.length <= 3);
        seen.unshift(...seqs(messages, topic!));
        before = messages[0]!.id;
      }
      assert.deepEqual(seen, [5, 6, 7, 8, 9, 10, 11, 12], 'paging before ids: no gap, no duplicate');
      assert.deepEqual(seqs(await t.pushlet.history(other!, { limit: 100 }), other!), [1, 2, 3, 4, 5], 'the other topic untouched');
    });

    it('11. rewind: the latest messages of each topic first (published on another instance where distributed), then live ones; a drop and a resume from the last id or the connected id lose and repeat nothing', async () => {
      const options = backend.pushletOptions();
      const publisher = await app(options);
      const t = fixture.distributed ? await app(options) : publisher;
      const topics = await backend.topics(2);
      const ledger = new Ledger();
      await ledger.publishRounds(() => publisher.pushlet, topics, 6);
      const first = open(t, topics, undefined, 4);
      const connectedId = (await first.connected()).id;
      for (const topic of topics) await first.waitForMessage(topic, 6);
      for (const topic of topics) assert.deepEqual(seqs(first.messages, topic), [3, 4, 5, 6], `the last 4 of ${topic}: ${first.describe()}`);
      assert.equal(first.resets.length, 0, 'a rewind is no reset');
      await ledger.publishRounds(() => publisher.pushlet, topics, 3);
      await ledger.delivered(first, topics);
      const lastId = first.resumeId;
      first.close();
      await ledger.publishRounds(() => publisher.pushlet, topics, 2);

      const fromLast = open(t, topics, lastId, 4);
      const fromConnected = open(t, topics, connectedId, 4);
      await ledger.delivered(fromLast, topics);
      await ledger.delivered(fromConnected, topics);
      for (const topic of topics) {
        const chain = [...seqs(first.messages, topic), ...seqs(fromLast.messages, topic)];
        assert.deepEqual(chain, [3, 4, 5, 6, 7, 8, 9, 10, 11], `${topic}: the rewind, the drop and the resume, each once: ${fromLast.describe()}`);
        assert.deepEqual(seqs(fromConnected.messages, topic), [3, 4, 5, 6, 7, 8, 9, 10, 11], `${topic}: from the connected id: ${fromConnected.describe()}`);
      }
      assert.equal(fromLast.resets.length + fromConnected.resets.length, 0, 'exact resumes');
    });

    it(
      '12. rewind and history while the backend is away: refused cleanly (503, PushletUnavailableError), served once it is back',
      fixture.canFail ? {} : NEEDS_FAILURES,
      async () => {
        const t = await app();
        const [topic] = await backend.topics(1);
        const ledger = new Ledger();
        await ledger.publishRounds(() => t.pushlet, [topic!], 3);
        await backend.outage();
        await assert.rejects(t.pushlet.history(topic!, { limit: 5 }), { name: 'PushletUnavailableError' });
        const refused = open(t, [topic!], undefined, 2);
        await refused.waitForEnd(20_000);
        assert.ok(refused.failedCleanly, `a rewind that cannot be read fails cleanly: ${refused.describe()}`);
        await backend.restore();
        // The backend came back empty: history holds what is published from now on.
        await ledger.publishRounds(() => t.pushlet, [topic!], 2);
        const served = (await openUntilServed(t, [topic!], undefined, (r) => r.messages.length >= 2, 20_000, 2)).at(-1)!;
        assert.deepEqual(seqs(served.messages, topic!).slice(0, 2), [4, 5]);
      },
    );
  });
}
