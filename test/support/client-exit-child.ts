// Run by client.test.ts in a child process: subscribes, receives one message, closes the client
// and then must let Node exit by itself (no timer, socket or listener left behind).
import { WebSocket } from 'ws';
import { PushletClient } from '../../src/client/index.js';

const [url, transport] = process.argv.slice(2) as [string, 'websocket' | 'sse'];
const client = new PushletClient(url, { WebSocket, transport, pingIntervalMs: 50, pingTimeoutMs: 1_000 });
const subscription = client.subscribe('exit', (message) => {
  process.stdout.write(`message ${message.data}\n`);
  client.close();
});
await subscription.ready;
process.stdout.write('ready\n');
