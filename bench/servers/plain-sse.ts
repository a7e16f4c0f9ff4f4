/**
 * The Node ceiling for SSE fan-out: `node:http` with no framework, each message encoded once and
 * the same buffer written to every subscriber's response.
 */
import { createServer, type ServerResponse } from 'node:http';
import { heartbeatMs, listen, MessageFactory, serve } from './harness.js';

const HEADERS = {
  'Content-Type': 'text/event-stream',
  'Cache-Control': 'no-cache',
  Connection: 'keep-alive',
  'X-Accel-Buffering': 'no',
};

await serve(async () => {
  const topics = new Map<string, Set<ServerResponse>>();
  const open = new Set<ServerResponse>();
  const messages = new MessageFactory();

  const http = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== '/events') return void res.writeHead(404).end();
    const requested = url.searchParams.getAll('topic');
    const subscribed = requested.length ? [...new Set(requested)] : ['default'];
    req.socket.setNoDelay(true);
    req.socket.setTimeout(0);
    res.writeHead(200, HEADERS);
    res.write(`event: pushlet:connected\ndata: ${JSON.stringify({ topics: subscribed })}\n\n`);
    open.add(res);
    for (const topic of subscribed) {
      let set = topics.get(topic);
      if (!set) topics.set(topic, (set = new Set()));
      set.add(res);
    }
    res.on('close', () => {
      open.delete(res);
      for (const topic of subscribed) {
        const set = topics.get(topic);
        set?.delete(res);
        if (set?.size === 0) topics.delete(topic);
      }
    });
  });
  const heartbeat = setInterval(() => {
    const frame = Buffer.from(`: heartbeat ${new Date().toISOString()}\n\n`);
    for (const res of open) res.write(frame);
  }, heartbeatMs());

  return {
    port: await listen(http),
    features: { sse: true },
    publish(topic, event, data) {
      const clients = topics.get(topic);
      if (!clients) return;
      const message = messages.create(topic, event, data);
      const lines = data
        .split(/\r\n|\r|\n/)
        .map((line) => `data: ${line}\n`)
        .join('');
      const frame = Buffer.from(`id: ${message.id}\nevent: ${event}\n${lines}\n`);
      for (const res of clients) res.write(frame);
    },
    connections: () => open.size,
    async close() {
      clearInterval(heartbeat);
      for (const res of open) res.destroy();
      http.close();
    },
  };
});
