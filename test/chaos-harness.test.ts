import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ChaosClient, type ClientRecord } from './support/chaos/chaos-client.js';
import { EventStreamParser, type StreamEvent } from './support/chaos/event-stream.js';
import { judge, type HistoryLoss, type Phase } from './support/chaos/ledger.js';
import { Publisher, type Fate } from './support/chaos/publisher.js';
import { formatCursor, topicHash } from '../src/protocol/ids.js';
import { PROTOCOL_TEXTS } from '../src/protocol/texts.js';

/**
 * The chaos test's own parts, checked without any server: the event-stream parser against the
 * WHATWG rules, and the ledger against hand-made histories, so that a clean chaos run means
 * the module kept its promise, and a failing one that it did not.
 */

function parse(chunks: readonly string[]): StreamEvent[] {
  const events: StreamEvent[] = [];
  const parser = new EventStreamParser((e) => events.push(e));
  for (const chunk of chunks) parser.feed(chunk);
  return events;
}

describe('chaos harness: event-stream parser (WHATWG rules)', () => {
  it('reads id, event and multi-line data, ignores comments and unknown fields', () => {
    const events = parse([': heartbeat\n\nid: 7\nevent: pushlet:reset\ndata: a\ndata:b\nretry: 10\nfoo: bar\n\n']);
    assert.deepEqual(events, [
      { id: undefined, event: 'message', data: undefined },
      { id: '7', event: 'pushlet:reset', data: 'a\nb' },
    ]);
  });

  it('ends lines at CRLF, CR or LF, also when CRLF is split across chunks, and strips a leading BOM', () => {
    const events = parse(['\uFEFFdata: one\r', '\n\r', 'data: two\rid: 2\r\r\ndata: three\n\n']);
    assert.deepEqual(
      events.filter((e) => e.data !== undefined),
      [
        { id: undefined, event: 'message', data: 'one' },
        { id: '2', event: 'message', data: 'two' },
        { id: undefined, event: 'message', data: 'three' },
      ],
    );
  });

  it('keeps the id of a frame without data, ignores an id with NUL, drops an unterminated frame', () => {
    const events = parse(['id: 5\n\nid: a\0b\ndata: x\n\ndata: cut']);
    assert.deepEqual(events, [
      { id: '5', event: 'message', data: undefined },
      { id: undefined, event: 'message', data: 'x' },
    ]);
  });

  it('takes a field without a colon as an empty value, and only one leading space off a value', () => {
    assert.deepEqual(parse(['data\ndata:  two spaces\n\n']), [{ id: undefined, event: 'message', data: '\n two spaces' }]);
  });
});

/** A publisher whose history is given: `fates[i]` is the fate of seq i + 1 of topic `t`. */
function publisherWith(fates: readonly Fate[], startedAt = 10): Publisher {
  const publisher = new Publisher({ topics: ['t'], endpoints: () => [], random: Math.random, gapMs: [0, 0], requestTimeoutMs: 1 });
  const list = publisher.publications.get('t')!;
  fates.forEach((fate, i) => list.push({ topic: 't', seq: i + 1, instance: 'i0', startedAt: startedAt + i, fate, settledAt: startedAt + i + 0.5 }));
  return publisher;
}

/** A client whose observations are given: `m<seq>` a message of topic `t`, `R` a reset naming it, `C<n>` connection n opened. */
function clientWith(script: string, times: { resumeBaseline?: number } = {}): ChaosClient {
  const client = new ChaosClient('c00', 'ws', ['t'], () => [], Math.random);
  let at = 1;
  let conn = 0;
  const push = (record: ClientRecord) => client.records.push(record);
  for (const token of script.split(' ')) {
    at += 1;
    if (token.startsWith('C')) {
      conn = Number(token.slice(1));
      const resumeId = conn > 1 ? `id-${conn}` : undefined;
      client.connections.set(conn, { conn, instance: 'i0', resumeId, baseline: resumeId ? (times.resumeBaseline ?? at) : at, openedAt: at });
      push({ kind: 'open', at, conn, instance: 'i0', resumeId });
      if (conn === 1) push({ kind: 'connected', at: 2, conn, id: 'id-0' });
    } else if (token === 'R') push({ kind: 'reset', at: 100 + at, conn, topics: ['t'], reason: 'test' });
    else push({ kind: 'message', at: 100 + at, conn, topic: 't', seq: Number(token.slice(1)), id: `id-${token}` });
  }
  return client;
}

const phases: Phase[] = [{ name: 'clients', from: 0, to: Infinity }];
const acked = (n: number): Fate[] => Array.from({ length: n }, () => 'acknowledged');

describe('chaos harness: ledger', () => {
  it('passes a client that got everything once, in order, across reconnections', () => {
    const verdict = judge([clientWith('C1 m1 m2 C2 m3 m4')], publisherWith(acked(4)), [], phases);
    assert.deepEqual(verdict.findings, []);
    assert.equal(verdict.deliveries, 4);
    assert.equal(verdict.reconnects, 1);
  });

  it('finds a duplicate, an acknowledged seq out of order (not also a gap), and a silent gap', () => {
    const kinds = (script: string, fates: Fate[]) => judge([clientWith(script)], publisherWith(fates), [], phases).findings.map((f) => f.kind);
    assert.deepEqual(kinds('C1 m1 m2 C2 m2 m3', acked(3)), ['duplicate']);
    assert.deepEqual(kinds('C1 m2 m1 m3', acked(3)), ['out-of-order']);
    assert.deepEqual(kinds('C1 m1 C2 m3', acked(3)), ['silent-gap']);
    // The tail: the last acknowledged seq never arrived.
    assert.deepEqual(kinds('C1 m1 m2', acked(3)), ['silent-gap']);
  });

  it('lets a seq of unknown fate be missing or late, and a reset cover a gap', () => {
    const kinds = (script: string, fates: Fate[], losses: HistoryLoss[] = []) =>
      judge([clientWith(script, { resumeBaseline: 3 })], publisherWith(fates), losses, phases).findings.map((f) => f.kind);
    assert.deepEqual(kinds('C1 m1 m3', ['acknowledged', 'unknown', 'acknowledged']), []);
    assert.deepEqual(kinds('C1 m1 m3 m2', ['acknowledged', 'unknown', 'acknowledged']), []);
    const loss: HistoryLoss = { what: 'redis', topics: new Set(['t']), killedAt: 50, restartedAt: 60 };
    assert.deepEqual(kinds('C1 m1 C2 R m3', acked(3), [loss]), []);
  });

  it('calls a reset unjustified without a loss of the topic, or when the connection started after the restart', () => {
    const kinds = (losses: HistoryLoss[], resumeBaseline: number) =>
      judge([clientWith('C1 m1 C2 R m3', { resumeBaseline })], publisherWith(acked(3)), losses, phases).findings.map((f) => f.kind);
    assert.deepEqual(kinds([], 3), ['unjustified-reset']);
    assert.deepEqual(kinds([{ what: 'master', topics: new Set(['other']), killedAt: 50, restartedAt: 60 }], 3), ['unjustified-reset']);
    assert.deepEqual(kinds([{ what: 'redis', topics: new Set(['t']), killedAt: 1, restartedAt: 2 }], 3), ['unjustified-reset']);
    assert.deepEqual(kinds([{ what: 'redis', topics: new Set(['t']), killedAt: 1, restartedAt: 4 }], 3), []);
  });

  it('justifies a reset at a resume from a message stamped before the loss, also after a reset without an id', () => {
    // A reset in the middle of a connection carries no id: the client still holds the position of
    // its last message, drops before the next one and is told "too old" on its next resume. Its
    // last news of the topic (the first reset) came after the restart; its position did not.
    const cursor = (ms: number, seq: number) => formatCursor([[topicHash('t'), { ms, seq }]]);
    const history = (resumedFrom: string) => {
      const client = new ChaosClient('c00', 'ws', ['t'], () => [], Math.random);
      const conn = (n: number, at: number, resumeId: string | undefined, baseline: number) => {
        client.connections.set(n, { conn: n, instance: 'i0', resumeId, baseline, openedAt: at });
        client.records.push({ kind: 'open', at, conn: n, instance: 'i0', resumeId });
      };
      conn(1, 2, undefined, 2);
      client.records.push({ kind: 'connected', at: 3, conn: 1, id: cursor(900, 0) });
      client.records.push({ kind: 'message', at: 10, conn: 1, topic: 't', seq: 1, id: cursor(1000, 1) });
      client.records.push({ kind: 'closed', at: 21, conn: 1, cause: 'cut' });
      conn(2, 35, cursor(1000, 1), 10);
      client.records.push({ kind: 'connected', at: 36, conn: 2, id: cursor(1000, 1) });
      client.records.push({ kind: 'reset', at: 37, conn: 2, topics: ['t'], reason: PROTOCOL_TEXTS.resetHistoryLost });
      client.records.push({ kind: 'closed', at: 38, conn: 2, cause: 'closed' });
      conn(3, 40, resumedFrom, 36);
      client.records.push({ kind: 'connected', at: 41, conn: 3, id: cursor(3000, 0) });
      client.records.push({ kind: 'reset', at: 42, conn: 3, topics: ['t'], reason: PROTOCOL_TEXTS.resetTooOld });
      client.records.push({ kind: 'message', at: 50, conn: 3, topic: 't', seq: 3, id: cursor(3000, 1) });
      return client;
    };
    const kinds = (resumedFrom: string, clockAtRestart: number | undefined) =>
      judge(
        [history(resumedFrom)],
        publisherWith(acked(3)),
        [{ what: 'master', topics: new Set(['t']), killedAt: 20, restartedAt: 30, clockAtRestart }],
        phases,
      ).findings.map((f) => f.kind);
    assert.deepEqual(kinds(cursor(1000, 1), 2000), []);
    // Judged by receipt times alone (no clock of the restart), the second reset looks unjustified.
    assert.deepEqual(kinds(cursor(1000, 1), undefined), ['unjustified-reset']);
    // A position no message had (an instance's estimate) proves nothing about the loss.
    assert.deepEqual(kinds(cursor(1500, 0), 2000), ['unjustified-reset']);
    // Nor does a message stamped after the restart.
    assert.deepEqual(kinds(cursor(1000, 1), 900), ['unjustified-reset']);
  });

  it('finds clients that disagree on where a seq of unknown fate belongs', () => {
    const a = clientWith('C1 m1 m2 m3');
    const b = clientWith('C1 m1 m3 m2');
    const verdict = judge([a, b], publisherWith(['acknowledged', 'unknown', 'acknowledged']), [], phases);
    assert.deepEqual(
      verdict.findings.map((f) => f.kind),
      ['order-disagreement'],
    );
  });
});
