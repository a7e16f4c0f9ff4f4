// Measures what counting costs per message, in isolation from the network and the rest of the
// server (issue 15): the fan-out count (deliveries and bytes per kind of connection), and with
// the Prometheus metrics mounted, the two histogram observations (publish duration, broker lag).
// Each is paid once per message, whatever the number of subscribers: divide by the subscribers
// of a message for the cost per delivery.
// Run: npm run build:all && node build/bench/metrics-cost.js
import { performance } from 'node:perf_hooks';
import { Registry } from 'prom-client';
import { Envelope } from '../src/index.js';
import { PushletCounters } from '../src/metrics/pushlet-counters.js';
import { PushletMetricSet } from '../src/metrics/pushlet-metrics.js';
import type { PushletService } from '../src/pushlet.service.js';
import { messageEncoding, SSE_METERS } from '../src/sse/sse-encoder.js';
import { messageWireFrame, WS_METERS } from '../src/ws/ws-encoder.js';
import { median } from './lib/stats.js';

const MESSAGES = 200_000;
const ROUNDS = 7;
const data = 'x'.repeat(100);

function envelopes(): Envelope[] {
  const now = Date.now();
  return Array.from({ length: 1_000 }, (_, i) => {
    const envelope = Envelope.create({ ms: now, seq: i }, 'topic', 'message', data);
    // Delivery has encoded the message by the time it is counted.
    messageEncoding(envelope, 'text');
    messageWireFrame(envelope, true);
    return envelope;
  });
}

/** Median ns per message of `work` over ROUNDS rounds of MESSAGES messages. */
function nsPerMessage(work: (envelope: Envelope) => void): number {
  const list = envelopes();
  const results: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const started = performance.now();
    for (let i = 0; i < MESSAGES; i++) work(list[i % list.length]!);
    results.push(((performance.now() - started) * 1e6) / MESSAGES);
  }
  return median(results);
}

const meters = [
  { meter: SSE_METERS.text, count: 1_000 },
  { meter: WS_METERS.binary, count: 1_000 },
];

function counters(withMetrics: boolean): PushletCounters {
  const counters = new PushletCounters();
  if (withMetrics) {
    const source = { stats: () => ({}) as never, observe: (observer: never) => counters.observe(observer) } as unknown as PushletService;
    PushletMetricSet.on(new Registry()).add(source);
  }
  return counters;
}

const off = counters(false);
const on = counters(true);
const rows: Array<[string, number]> = [
  ['fan-out count (two kinds of connection), metrics off', nsPerMessage((e) => off.fannedOut(e, meters))],
  ['fan-out count and broker-lag histogram, metrics on', nsPerMessage((e) => on.fannedOut(e, meters))],
  ['publish count, metrics off', nsPerMessage(() => off.acknowledged('server', off.publishing()))],
  ['publish count and duration histogram, metrics on', nsPerMessage(() => on.acknowledged('server', on.publishing()))],
];
console.log('| per message | ns |\n| --- | ---: |');
for (const [what, ns] of rows) console.log(`| ${what} | ${ns.toFixed(0)} |`);
