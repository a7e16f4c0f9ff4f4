/**
 * Micro-benchmarks of the module's own code, in this process, without the network:
 * - `history-memory` (needs `node --expose-gc`): what the in-memory history costs per topic at the
 *   default window (1,000 messages), for a few payload sizes. Live delivery drops each envelope's
 *   cached encodings once every subscriber has written them; the last column shows what keeping
 *   them would cost instead.
 * - `cursor-cost`: what a per-connection resume cursor costs per delivery (Redis Cluster, where
 *   each topic orders its own ids) against the shared encoding every subscriber writes elsewhere.
 * - `metrics-cost` (issue 15): what counting costs per message: the fan-out count, and with the
 *   Prometheus metrics mounted, the two histogram observations (publish duration, broker lag).
 *   Each is paid once per message, whatever the number of subscribers.
 * - `pattern-match` (issue 23): what routing a message to pattern subscriptions costs an instance:
 *   one match of its topic against every pattern held (a segment trie), for 10 to 10,000 patterns.
 * Run: npm run build:all && node --expose-gc build/bench/micro.js [history-memory|cursor-cost|metrics-cost|pattern-match] (all without one).
 */
import { performance } from 'node:perf_hooks';
import { Registry } from 'prom-client';
import { TopicPosition } from '../src/core/catch-up.js';
import { PatternIndex } from '../src/core/pattern-index.js';
import { ResumeCursorWriter } from '../src/core/resume-cursor.js';
import { Envelope, MemoryBroker } from '../src/index.js';
import { PushletCounters } from '../src/metrics/pushlet-counters.js';
import { PushletMetricSet } from '../src/metrics/pushlet-metrics.js';
import { DEFAULTS } from '../src/pushlet.constants.js';
import type { PushletService } from '../src/pushlet.service.js';
import { messageEncoding, messageFrame, messageWithId as sseWithId, SSE_METERS } from '../src/sse/sse-encoder.js';
import { messageWireFrame, messageWithId as wsWithId, WS_METERS } from '../src/ws/ws-encoder.js';
import { median } from './lib/stats.js';

const DATA = 'x'.repeat(100);

async function historyMemory(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('history-memory: run with node --expose-gc');
  const heap = () => {
    gc();
    gc();
    return process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
  };
  const topics = 20;
  const count = DEFAULTS.historyMaxCount;
  console.log(`| payload | per message | per topic (${count} messages) | per topic if the SSE frame were kept |`);
  console.log('| ---: | ---: | ---: | ---: |');
  for (const size of [16, 100, 1000]) {
    const results: number[] = [];
    for (const encode of [false, true]) {
      const broker = new MemoryBroker({ maxCount: count, maxAgeMs: 3_600_000, maxTopics: topics * 2 });
      const before = heap();
      for (let t = 0; t < topics; t++) {
        for (let i = 0; i < count; i++) {
          const record = broker.record(`bench/topic-${t}`, 'message', 'x'.repeat(size - String(i).length) + i);
          if (encode) messageFrame(Envelope.create(record.position, record.topic, record.event, record.data));
        }
      }
      results.push((heap() - before) / topics);
      await broker.stop();
    }
    const [plain, encoded] = results as [number, number];
    console.log(`| ${size} B | ${(plain / count).toFixed(0)} B | ${(plain / 1024).toFixed(0)} KiB | ${(encoded / 1024).toFixed(0)} KiB |`);
  }
}

/** SSE (chunked, the direct socket path) and WebSocket (a whole frame), 2,000 subscribers × 200 messages, timed after a warm-up. */
function cursorCost(): void {
  const subscribers = 2_000;
  const messages = 200;
  const measure = (name: string, topics: number, deliver: (envelope: Envelope, cursor: () => string) => Buffer) => {
    const connections = Array.from({ length: subscribers }, (_, c) => {
      const entries = new Map(Array.from({ length: topics }, (_, t) => [`topic/${t}`, { position: new TopicPosition({ ms: 1_795_000_000_000 + c, seq: t }) }]));
      return { entries, writer: new ResumeCursorWriter() };
    });
    let bytes = 0;
    const run = () => {
      for (let m = 0; m < messages; m++) {
        const envelope = Envelope.create({ ms: 1_795_000_001_000 + m, seq: 1 }, 'topic/0', 'message', DATA);
        for (const connection of connections) {
          connection.entries.get('topic/0')!.position.advance(envelope.position);
          bytes += deliver(envelope, () => connection.writer.write(connection.entries)).length;
        }
        envelope.releaseEncodings();
      }
    };
    run(); // warm up
    const started = process.hrtime.bigint();
    run();
    const ns = Number(process.hrtime.bigint() - started) / (subscribers * messages);
    console.log(`| ${name} | ${topics} | ${ns.toFixed(0)} ns | ${(bytes / (2 * subscribers * messages)).toFixed(0)} B |`);
  };
  console.log('| path | topics per connection | CPU per delivery | bytes per delivery |');
  console.log('| --- | ---: | ---: | ---: |');
  measure('SSE, shared encoding (one id for all topics)', 1, (envelope) => messageEncoding(envelope).chunk);
  measure('WebSocket, shared encoding', 1, (envelope) => messageWireFrame(envelope, true));
  for (const topics of [1, 3, 10]) {
    measure('SSE, per-connection cursor (Cluster)', topics, (envelope, cursor) => sseWithId(envelope, cursor(), true));
    measure('WebSocket, per-connection cursor (Cluster)', topics, (envelope, cursor) => wsWithId(envelope, cursor(), true, true));
  }
}

/** Median ns per message over 7 rounds of 200,000 messages; divide by the subscribers of a message for the cost per delivery. */
function metricsCost(): void {
  const now = Date.now();
  const list = Array.from({ length: 1_000 }, (_, i) => {
    const envelope = Envelope.create({ ms: now, seq: i }, 'topic', 'message', DATA);
    // Delivery has encoded the message by the time it is counted.
    messageEncoding(envelope, 'text');
    messageWireFrame(envelope, true);
    return envelope;
  });
  const nsPerMessage = (work: (envelope: Envelope) => void) => {
    const results: number[] = [];
    for (let round = 0; round < 7; round++) {
      const started = performance.now();
      for (let i = 0; i < 200_000; i++) work(list[i % list.length]!);
      results.push(((performance.now() - started) * 1e6) / 200_000);
    }
    return median(results);
  };
  const counters = (withMetrics: boolean) => {
    const counters = new PushletCounters();
    if (withMetrics) {
      const source = { stats: () => ({}) as never, observe: (observer: never) => counters.observe(observer) } as unknown as PushletService;
      PushletMetricSet.on(new Registry()).add(source);
    }
    return counters;
  };
  const meters = [
    { meter: SSE_METERS.text, count: 1_000 },
    { meter: WS_METERS.binary, count: 1_000 },
  ];
  const [off, on] = [counters(false), counters(true)];
  const rows: Array<[string, number]> = [
    ['fan-out count (two kinds of connection), metrics off', nsPerMessage((e) => off.fannedOut(e, meters))],
    ['fan-out count and broker-lag histogram, metrics on', nsPerMessage((e) => on.fannedOut(e, meters))],
    ['publish count, metrics off', nsPerMessage(() => off.acknowledged('server', off.publishing()))],
    ['publish count and duration histogram, metrics on', nsPerMessage(() => on.acknowledged('server', on.publishing()))],
  ];
  console.log('| per message | ns |\n| --- | ---: |');
  for (const [what, ns] of rows) console.log(`| ${what} | ${ns.toFixed(0)} |`);
}

function patternMatch(): void {
  const topics = Array.from({ length: 1_000 }, (_, i) => (i % 2 ? `orders/${i}/x` : `users/${i}/a/b`));
  console.log('| patterns held | ns per message | matches per message |\n| ---: | ---: | ---: |');
  for (const count of [10, 100, 1_000, 10_000]) {
    const index = new PatternIndex<number>();
    for (let i = 0; i < count; i++) index.set(i % 2 ? `orders/${i}/*` : `users/${i}/#`, i);
    let matches = 0;
    const rounds = 500_000;
    for (let i = 0; i < rounds / 5; i++) matches += index.match(topics[i % topics.length]!).length;
    matches = 0;
    const started = performance.now();
    for (let i = 0; i < rounds; i++) matches += index.match(topics[i % topics.length]!).length;
    const ns = ((performance.now() - started) * 1e6) / rounds;
    console.log(`| ${count} | ${ns.toFixed(0)} | ${(matches / rounds).toFixed(2)} |`);
  }
}

const TOOLS: Record<string, () => void | Promise<void>> = {
  'history-memory': historyMemory,
  'cursor-cost': cursorCost,
  'metrics-cost': metricsCost,
  'pattern-match': patternMatch,
};
const wanted = process.argv.slice(2);
for (const name of wanted.length ? wanted : Object.keys(TOOLS)) {
  if (!TOOLS[name]) throw new Error(`unknown measurement ${name} (one of ${Object.keys(TOOLS).join(', ')})`);
  console.log(`\n${name}\n`);
  await TOOLS[name]();
}
