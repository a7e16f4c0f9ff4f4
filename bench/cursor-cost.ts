// Measures what a per-connection resume cursor costs per delivery (Redis Cluster, where each
// topic orders its own ids) against the shared encoding every subscriber writes elsewhere, for
// SSE (chunked, the direct socket path) and WebSocket (a whole frame, the direct socket path).
// Run: npm run build:all && node build/bench/cursor-cost.js
import { Envelope } from '../src/index.js';
import { TopicPosition } from '../src/core/catch-up.js';
import { ResumeCursorWriter } from '../src/core/resume-cursor.js';
import { messageEncoding, messageWithId as sseWithId } from '../src/sse/sse-encoder.js';
import { messageWireFrame, messageWithId as wsWithId } from '../src/ws/ws-encoder.js';

const SUBSCRIBERS = 2_000;
const MESSAGES = 200;
const data = 'x'.repeat(100);

function measure(name: string, topics: number, deliver: (envelope: Envelope, cursor: () => string) => Buffer): void {
  const connections = Array.from({ length: SUBSCRIBERS }, (_, c) => {
    const entries = new Map(Array.from({ length: topics }, (_, t) => [`topic/${t}`, { position: new TopicPosition({ ms: 1_795_000_000_000 + c, seq: t }) }]));
    return { entries, writer: new ResumeCursorWriter() };
  });
  let bytes = 0;
  const run = () => {
    for (let m = 0; m < MESSAGES; m++) {
      const envelope = Envelope.create({ ms: 1_795_000_001_000 + m, seq: 1 }, 'topic/0', 'message', data);
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
  const ns = Number(process.hrtime.bigint() - started) / (SUBSCRIBERS * MESSAGES);
  console.log(`| ${name} | ${topics} | ${ns.toFixed(0)} ns | ${(bytes / (2 * SUBSCRIBERS * MESSAGES)).toFixed(0)} B |`);
}

console.log('| path | topics per connection | CPU per delivery | bytes per delivery |');
console.log('| --- | ---: | ---: | ---: |');
measure('SSE, shared encoding (one id for all topics)', 1, (envelope) => messageEncoding(envelope).chunk);
measure('WebSocket, shared encoding', 1, (envelope) => messageWireFrame(envelope, true));
for (const topics of [1, 3, 10]) {
  measure('SSE, per-connection cursor (Cluster)', topics, (envelope, cursor) => sseWithId(envelope, cursor(), true));
  measure('WebSocket, per-connection cursor (Cluster)', topics, (envelope, cursor) => wsWithId(envelope, cursor(), true, true));
}
