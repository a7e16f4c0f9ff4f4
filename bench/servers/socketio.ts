/**
 * Socket.IO 4 with rooms (one room per topic); with REDIS_URL, instances are joined by
 * @socket.io/redis-adapter. Clients name their topic in the handshake query (`?topic=`) or
 * emit `subscribe`.
 */
import { createServer } from 'node:http';
import { createAdapter } from '@socket.io/redis-adapter';
import { Redis } from 'ioredis';
import { Server } from 'socket.io';
import { heartbeatMs, listen, MessageFactory, serve } from './harness.js';

await serve(async () => {
  const messages = new MessageFactory();
  const http = createServer();
  const io = new Server(http, {
    serveClient: false,
    transports: ['websocket'],
    perMessageDeflate: false,
    pingInterval: heartbeatMs(),
    pingTimeout: 20_000,
  });
  const redisUrl = process.env.REDIS_URL || undefined;
  const pub = redisUrl ? new Redis(redisUrl) : undefined;
  const sub = pub?.duplicate();
  if (pub && sub) io.adapter(createAdapter(pub, sub));

  io.on('connection', (socket) => {
    const query = socket.handshake.query.topic;
    const requested = Array.isArray(query) ? query : query ? [query] : ['default'];
    void socket.join(requested);
  });

  return {
    port: await listen(http),
    features: { ws: true, distributed: Boolean(redisUrl) },
    publish(topic, event, data) {
      io.to(topic).emit(event, messages.create(topic, event, data));
    },
    connections: () => io.engine.clientsCount,
    async close() {
      io.disconnectSockets(true);
      await io.close();
      pub?.disconnect();
      sub?.disconnect();
    },
  };
});
