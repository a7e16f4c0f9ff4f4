/**
 * A client process of real SDK clients (`PushletClient`, with `ws`'s WebSocket in Node), started
 * by the `client-reconnect` scenario: opens many clients, each subscribed to one topic, and
 * records for each what a server restart costs it: when it dropped, every failed attempt, when it
 * was connected again, every measured message (sequence number and publish time, both from the
 * payload) and every reset. Nothing is summarised here until the orchestrator asks.
 */
import { WebSocket } from 'ws';
import { PushletClient, type ClientMessage, type ClientState } from '../../src/client/index.js';
import { notify, serveCommands } from '../lib/ipc.js';
import { nowUs } from '../lib/proc.js';
import { Ledger } from './connection.js';

export interface OpenArgs {
  baseUrl: string;
  transport: 'websocket' | 'sse';
  clients: number;
  topics: number;
  topicPrefix: string;
  minReconnectDelayMs: number;
  maxReconnectDelayMs: number;
}

export type Status = ReturnType<typeof status>;
export type ClientReport = ReturnType<typeof report>;

/** One client and what it saw. */
class Tracked {
  state: ClientState = 'disconnected';
  warm = false;
  readonly seen = new Ledger();
  lastSeq = -1;
  duplicates = 0;
  outOfOrder = 0;
  resets = 0;
  droppedUs = -1;
  connectedUs = -1;
  /** Failed attempts: error events after the drop (the drop's own comes just before it), up to the reconnection. */
  errorsAfterDrop = 0;
  /** Connection attempts started after the drop. */
  readonly attemptsUs: number[] = [];
  /** Publish and receipt times (µs) of the messages received after `mark`. */
  readonly publishedUs: number[] = [];
  readonly receivedUs: number[] = [];
  client!: PushletClient;

  constructor(readonly topic: string) {}
}

const MEASURED = /^@@M(\d+)\.(\d+)\./;
const tracked: Tracked[] = [];
const errorSamples: string[] = [];
let markUs = Number.POSITIVE_INFINITY;
let received = 0;

function record(t: Tracked, message: ClientMessage): void {
  const match = MEASURED.exec(message.data);
  if (!match) {
    t.warm = true; // a warm-up message
    return;
  }
  const seq = Number(match[1]);
  const at = nowUs();
  received += 1;
  if (!t.seen.add(seq)) t.duplicates += 1;
  if (seq < t.lastSeq) t.outOfOrder += 1;
  t.lastSeq = Math.max(t.lastSeq, seq);
  if (at >= markUs) {
    t.publishedUs.push(Number(match[2]));
    t.receivedUs.push(at);
  }
}

function open(args: OpenArgs): Promise<{ elapsedMs: number }> {
  const started = Date.now();
  const ready: Array<Promise<void>> = [];
  for (let i = 0; i < args.clients; i += 1) {
    const t = new Tracked(`${args.topicPrefix}${i % args.topics}`);
    // The constructor and fetch the client is given note when each attempt starts.
    const attempt = () => {
      if (t.droppedUs >= 0 && t.connectedUs < 0) t.attemptsUs.push(nowUs());
    };
    const client = new PushletClient(args.baseUrl, {
      WebSocket: class extends WebSocket {
        constructor(url: string) {
          attempt();
          super(url);
        }
      },
      fetch: (input, init) => {
        attempt();
        return fetch(input, init);
      },
      transport: args.transport,
      minReconnectDelayMs: args.minReconnectDelayMs,
      maxReconnectDelayMs: args.maxReconnectDelayMs,
    });
    t.client = client;
    client.on('state', (state) => {
      const at = nowUs();
      if (at >= markUs && t.state === 'connected' && t.droppedUs < 0) t.droppedUs = at;
      if (at >= markUs && state === 'connected' && t.droppedUs >= 0 && t.connectedUs < 0) t.connectedUs = at;
      t.state = state;
    });
    client.on('error', (error) => {
      if (t.droppedUs < 0 || t.connectedUs >= 0) return;
      t.errorsAfterDrop += 1;
      if (errorSamples.length < 5 && !/ended the connection|ECONNREFUSED|closed with 1006/.test(error.message)) errorSamples.push(error.message);
    });
    client.on('reset', () => (t.resets += 1));
    ready.push(client.subscribe(t.topic, (message) => record(t, message)).ready);
    tracked.push(t);
  }
  return Promise.all(ready).then(() => ({ elapsedMs: Date.now() - started }));
}

/** dropped: clients whose state left `connected` since `mark`; back: dropped and connected again; warm: got a warm-up message. */
function status() {
  let connected = 0;
  let dropped = 0;
  let back = 0;
  let warm = 0;
  for (const t of tracked) {
    if (t.warm) warm += 1;
    if (t.state === 'connected') connected += 1;
    if (t.droppedUs >= 0) dropped += 1;
    if (t.connectedUs >= 0) back += 1;
  }
  return { clients: tracked.length, connected, dropped, back, received, warm };
}

/**
 * What each client got, against `totals` (messages published per topic, sequence numbers from 0).
 * Per client, µs on the shared monotonic clock (`-1` where it did not happen): dropped, connected
 * again, caught up (the last receipt of a message published before it was connected again), and
 * when each reconnect attempt started (the WebSocket constructed, or the SSE fetch called);
 * failedAttempts: error events between the drop and the connection that got through.
 */
function report(args: { totals: Record<string, number> }) {
  const out = {
    clients: tracked.length,
    droppedUs: [] as number[],
    connectedUs: [] as number[],
    caughtUpUs: [] as number[],
    failedAttempts: [] as number[],
    attemptsUs: [] as number[][],
  };
  const counts = { missed: 0, duplicates: 0, outOfOrder: 0, resets: 0, clientsMissing: 0 };
  for (const t of tracked) {
    const total = args.totals[t.topic] ?? 0;
    let missing = 0;
    for (let seq = 0; seq < total; seq += 1) if (!t.seen.has(seq)) missing += 1;
    counts.missed += missing;
    if (missing > 0) counts.clientsMissing += 1;
    let caughtUp = t.connectedUs;
    if (t.connectedUs >= 0) {
      for (let i = 0; i < t.receivedUs.length; i += 1) {
        if (t.publishedUs[i]! < t.connectedUs && t.receivedUs[i]! > caughtUp) caughtUp = t.receivedUs[i]!;
      }
    }
    out.droppedUs.push(t.droppedUs);
    out.connectedUs.push(t.connectedUs);
    out.caughtUpUs.push(caughtUp);
    out.failedAttempts.push(t.errorsAfterDrop);
    out.attemptsUs.push(t.attemptsUs);
    counts.duplicates += t.duplicates;
    counts.outOfOrder += t.outOfOrder;
    counts.resets += t.resets;
  }
  return { ...out, ...counts, errorSamples };
}

serveCommands({
  open,
  status,
  /** From now on, a client leaving `connected` counts as the drop under test. */
  mark: () => {
    markUs = nowUs();
    return markUs;
  },
  report,
  exit: () => {
    for (const t of tracked) t.client.close();
    setTimeout(() => process.exit(0), 200).unref();
    return true;
  },
});
notify('ready', { pid: process.pid });
