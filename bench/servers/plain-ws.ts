/**
 * The Node ceiling for WebSocket fan-out: the `ws` library with no framework, each message
 * serialised and framed once and the same buffer written to every subscriber's socket.
 * With REDIS_URL, instances are joined by plain Redis pub/sub (one channel per topic).
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { Redis } from 'ioredis';
import * as wsModule from 'ws';
import { WebSocket, WebSocketServer } from 'ws';
import { heartbeatMs, listen, MessageFactory, serve } from './harness.js';

interface Client extends WebSocket {
  isAlive?: boolean;
  topics?: Set<string>;
}

const CHANNEL_PREFIX = 'bench:';

interface FrameOptions {
  fin: boolean;
  opcode: number;
  mask: boolean;
  readOnly: boolean;
  rsv1: boolean;
}
/** `ws` exports its frame encoder (`Sender.frame`); @types/ws does not declare it. */
const Sender = (wsModule as unknown as { Sender: { frame(data: Buffer, options: FrameOptions): Buffer[] } }).Sender;

await serve(async () => {
  const topics = new Map<string, Set<Client>>();
  const messages = new MessageFactory();
  const redisUrl = process.env.REDIS_URL || undefined;
  const pub = redisUrl ? new Redis(redisUrl) : undefined;
  const sub = redisUrl ? new Redis(redisUrl) : undefined;

  const fanOut = (topic: string, payload: Buffer) => {
    const clients = topics.get(topic);
    if (!clients) return;
    const frame = Buffer.concat(Sender.frame(payload, { fin: true, opcode: 2, mask: false, readOnly: true, rsv1: false }));
    for (const client of clients) {
      // Straight to the socket: per-message deflate is off, so nothing else is queued in the sender.
      if (client.readyState === WebSocket.OPEN) (client as unknown as { _socket: Duplex })._socket.write(frame);
    }
  };
  sub?.on('messageBuffer', (channel: Buffer, message: Buffer) => fanOut(channel.toString().slice(CHANNEL_PREFIX.length), message));

  const subscribe = (client: Client, topic: string) => {
    if (client.topics!.has(topic)) return;
    client.topics!.add(topic);
    let set = topics.get(topic);
    if (!set) {
      set = new Set();
      topics.set(topic, set);
      void sub?.subscribe(CHANNEL_PREFIX + topic);
    }
    set.add(client);
  };
  const unsubscribe = (client: Client, topic: string) => {
    const set = topics.get(topic);
    if (!set) return;
    set.delete(client);
    if (set.size === 0) {
      topics.delete(topic);
      void sub?.unsubscribe(CHANNEL_PREFIX + topic);
    }
  };

  const http = createServer((_req, res) => res.writeHead(404).end());
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 64 * 1024 });
  http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== '/ws') return socket.destroy();
    wss.handleUpgrade(req, socket, head, (ws: Client) => {
      ws.isAlive = true;
      ws.topics = new Set();
      const requested = url.searchParams.getAll('topic');
      for (const topic of requested.length ? requested : ['default']) subscribe(ws, topic);
      ws.on('pong', () => (ws.isAlive = true));
      ws.on('close', () => {
        for (const topic of ws.topics!) unsubscribe(ws, topic);
      });
    });
  });
  const heartbeat = setInterval(() => {
    for (const ws of wss.clients as Set<Client>) {
      if (!ws.isAlive) {
        ws.terminate();
        continue;
      }
      ws.isAlive = false;
      ws.ping();
    }
  }, heartbeatMs());

  return {
    port: await listen(http),
    features: { ws: true, distributed: Boolean(redisUrl) },
    publish(topic, event, data) {
      const text = JSON.stringify(messages.create(topic, event, data));
      if (pub) return pub.publish(CHANNEL_PREFIX + topic, text);
      fanOut(topic, Buffer.from(text));
      return undefined;
    },
    connections: () => wss.clients.size,
    async close() {
      clearInterval(heartbeat);
      for (const ws of wss.clients) ws.terminate();
      http.close();
      pub?.disconnect();
      sub?.disconnect();
    },
  };
});
