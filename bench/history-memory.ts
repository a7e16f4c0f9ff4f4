// Measures what the in-memory history costs per topic at the default window (1,000 messages),
// for a few payload sizes. Live delivery drops each envelope's cached encodings once every
// subscriber has written them; the last column shows what keeping them would cost instead.
// Run: npm run build:all && node --expose-gc build/bench/history-memory.js
import { Envelope, MemoryBroker } from '../src/index.js';
import { messageFrame } from '../src/sse/sse-encoder.js';
import { DEFAULTS } from '../src/pushlet.constants.js';

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');

function heap(): number {
  gc!();
  gc!();
  return process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
}

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
