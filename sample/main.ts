import { createSampleApp } from './app.js';

const port = Number(process.env.PORT ?? 3000);
const heartbeatMs = process.env.HEARTBEAT_MS ? Number(process.env.HEARTBEAT_MS) : undefined;
const app = await createSampleApp({ redisUrl: process.env.REDIS_URL || undefined, heartbeatMs, token: process.env.PUSHLET_TOKEN || undefined });
await app.listen(port);
console.log(`Pushlet sample on http://localhost:${port} (SSE /events, WebSocket /ws, publish /send, /broadcast)`);
