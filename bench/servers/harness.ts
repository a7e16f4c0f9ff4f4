import type { Server } from 'node:http';
import { performance } from 'node:perf_hooks';
import { nowUs } from '../lib/proc.js';
import { notify, serveCommands } from '../lib/ipc.js';

/**
 * What every server under test gives the harness: a way to publish one message to a topic, a
 * count of open connections, and a clean stop. The harness does the rest (pacing, payloads,
 * sequence numbers, statistics), identically for every peer.
 */
export interface ServerUnderTest {
  port: number;
  /** Publishes `data` on `topic`; may return a promise (it is not awaited in the hot loop). */
  publish(topic: string, event: string, data: string): unknown;
  /** Open client connections as the server itself counts them. */
  connections(): number;
  /** Capabilities the orchestrator checks before running a scenario (e.g. `distributed`). */
  features?: Record<string, boolean>;
  /** Closes the app and starts a new one on the same port, in this process (client-reconnect's instance B); µs on the shared clock. */
  restart?(): Promise<{ startUs: number; closedUs: number; listeningUs: number }>;
  close(): Promise<void>;
}

export const BENCH_EVENT = 'bench';
const PAYLOAD_BYTES = Number(process.env.BENCH_PAYLOAD ?? 100);
const PAD = 'x'.repeat(Math.max(0, PAYLOAD_BYTES));

/**
 * The payload of a measured message: `@@M<seq>.<publish time µs>.` padded to BENCH_PAYLOAD bytes.
 * No character in it needs escaping in JSON, SSE or Socket.IO framing, so load clients can find
 * it in the raw bytes of every protocol without parsing the whole frame.
 */
export function measuredData(seq: number): string {
  const head = `@@M${seq}.${nowUs()}.`;
  return head.length >= PAYLOAD_BYTES ? head : head + PAD.slice(0, PAYLOAD_BYTES - head.length);
}

/** A warm-up message: proves a subscription is live; not counted. */
const WARMUP_DATA = '@@W0.0.';

export async function serve(start: () => Promise<ServerUnderTest>): Promise<void> {
  const server = await start();
  const seqs = new Map<string, number>();
  let publishErrors = 0;
  let lastPublishError = '';
  // Highest sequence number the running flood may publish; -1 when no flood runs.
  let credit = -1;
  let wakeFlood: (() => void) | undefined;
  // Set by `stopSteady`: the running steady phase ends at its next tick.
  let steadyStopped = false;

  const onError = (error: unknown) => {
    publishErrors += 1;
    lastPublishError = String(error);
  };
  const publish = (topic: string, data: string) => {
    try {
      const result = server.publish(topic, BENCH_EVENT, data) as { then?: unknown } | undefined;
      if (result && typeof result.then === 'function') (result as Promise<unknown>).then(undefined, onError);
    } catch (error) {
      onError(error);
    }
  };
  const publishMeasured = (topic: string) => {
    const seq = seqs.get(topic) ?? 0;
    seqs.set(topic, seq + 1);
    publish(topic, measuredData(seq));
  };

  serveCommands({
    /** Publishes round-robin over `topics` at `rate` messages per second (all topics together). */
    steady: (args: { topics: string[]; rate: number; durationMs: number }) =>
      new Promise((resolve) => {
        const { topics, rate, durationMs } = args;
        const total = Math.max(1, Math.round((rate * durationMs) / 1000));
        const startUs = nowUs();
        let sent = 0;
        steadyStopped = false;
        const tick = () => {
          const due = Math.min(total, Math.floor(((nowUs() - startUs) * rate) / 1e6) + 1);
          while (sent < due) {
            publishMeasured(topics[sent % topics.length]!);
            sent += 1;
          }
          if (sent >= total || steadyStopped) {
            resolve({ sent, totals: topics.map((t) => seqs.get(t) ?? 0), startUs, endUs: nowUs(), publishErrors });
            return;
          }
          const nextUs = startUs + (sent * 1e6) / rate;
          setTimeout(tick, Math.max(0, (nextUs - nowUs()) / 1000));
        };
        tick();
      }),

    /**
     * Publishes on `topic` as fast as the server can, one message per event-loop turn, but never
     * more than `credit` (granted by the orchestrator from what the slowest client has received)
     * so that no client falls so far behind that buffers, not the server, set the pace.
     */
    flood: (args: { topic: string; durationMs: number; window: number }) =>
      new Promise((resolve) => {
        const startSeq = seqs.get(args.topic) ?? 0;
        credit = startSeq + args.window;
        const startUs = nowUs();
        const deadlineUs = startUs + args.durationMs * 1000;
        const eluStart = performance.eventLoopUtilization();
        let stalls = 0;
        const pump = () => {
          wakeFlood = undefined;
          if (nowUs() >= deadlineUs) {
            credit = -1;
            const total = seqs.get(args.topic) ?? 0;
            const elu = performance.eventLoopUtilization(eluStart).utilization;
            resolve({ sent: total - startSeq, total, startUs, endUs: nowUs(), stalls, eventLoopUtilization: elu, publishErrors });
            return;
          }
          if ((seqs.get(args.topic) ?? 0) < credit) {
            publishMeasured(args.topic);
            setImmediate(pump);
          } else {
            stalls += 1;
            wakeFlood = pump;
            // Re-check the deadline even if no credit arrives.
            setTimeout(() => wakeFlood === pump && pump(), 50);
          }
        };
        pump();
      }),

    /** Ends the running steady phase early (its `steady` call then answers with what was sent). */
    stopSteady: () => {
      steadyStopped = true;
      return true;
    },

    credit: (args: { upTo: number }) => {
      if (args.upTo <= credit) return undefined;
      credit = args.upTo;
      const wake = wakeFlood;
      wakeFlood = undefined;
      wake?.();
      return undefined;
    },

    restart: () => server.restart!(),

    warmup: (args: { topics: string[] }) => {
      for (const topic of args.topics) publish(topic, WARMUP_DATA);
      return args.topics.length;
    },

    stats: (args: { gc?: boolean }) => {
      const gc = (globalThis as { gc?: () => void }).gc;
      if (args.gc && gc) {
        gc();
        gc();
      }
      const memory = process.memoryUsage();
      const loop = performance.eventLoopUtilization();
      return {
        /** Cumulative event-loop time (ms) idle and active since the process started: deltas give utilisation. */
        eventLoop: { idleMs: loop.idle, activeMs: loop.active },
        rssBytes: memory.rss,
        heapUsedBytes: memory.heapUsed,
        heapTotalBytes: memory.heapTotal,
        externalBytes: memory.external,
        arrayBuffersBytes: memory.arrayBuffers,
        connections: server.connections(),
        publishErrors,
        lastPublishError,
      };
    },

    exit: async () => {
      setTimeout(() => process.exit(0), 3_000).unref();
      try {
        await server.close();
      } finally {
        // process.exit (not a kill) so that --cpu-prof writes its profile.
        setImmediate(() => process.exit(0));
      }
      return true;
    },
  });
  notify('ready', { port: server.port, pid: process.pid, features: server.features ?? {} });
}

/** Listens on a free loopback port; answers the port. */
export async function listen(http: Server): Promise<number> {
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  return (http.address() as { port: number }).port;
}

/** Heartbeat interval of the servers under test (`HEARTBEAT_MS`, default 30 s as the module's). */
export function heartbeatMs(): number {
  return Number(process.env.HEARTBEAT_MS ?? 30_000);
}

/** `{id, topic, event, data, timestamp}` in the module's shape, so every peer sends the same bytes. */
export class MessageFactory {
  private lastMs = 0;
  private seq = 0;

  create(topic: string, event: string, data: string): { id: string; topic: string; event: string; data: string; timestamp: string } {
    const now = Date.now();
    if (now > this.lastMs) {
      this.lastMs = now;
      this.seq = 0;
    } else {
      this.seq += 1;
    }
    return { id: `${this.lastMs}-${this.seq}`, topic, event, data, timestamp: new Date(this.lastMs).toISOString() };
  }
}
