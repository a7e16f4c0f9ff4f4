/**
 * A load-client process for the reconnect storm (bench/reconnect-storm.ts): clients that keep the
 * id of the last message they saw, notice when their instance dies, and reconnect to the other
 * one with that id after a random delay, as a real client's backoff jitter would. Every frame is
 * parsed in full (ids, control events, the per-topic sequence number in each message's data) and
 * every message is checked: missing, twice, out of order, or skipped by a `pushlet:reset`.
 */
import { notify, serveCommands } from '../lib/ipc.js';
import { nowUs } from '../lib/proc.js';
import { Connection, type Sink } from './connection.js';

export interface StormTarget {
  protocol: 'ws' | 'sse';
  host: string;
  /** Instance A (connected first, then killed) and instance B (where clients reconnect). */
  portA: number;
  portB: number;
  /** Client i subscribes to `topicPrefix + ((topicFirst + i) % topics)`. */
  topicPrefix: string;
  topicFirst: number;
  topics: number;
  count: number;
  localAddress: string;
  /** Handshakes in flight while opening the first connections. */
  concurrency: number;
  /** First reconnection after a drop: a uniform random delay in [0, jitterMs). */
  jitterMs: number;
  /** Later attempts (after a failed one): full jitter, uniform in [0, min(backoffMaxMs, backoffBaseMs × 2^n)). */
  backoffBaseMs: number;
  backoffMaxMs: number;
  timeoutMs: number;
}

export interface StormProgress {
  clients: number;
  /** Got `pushlet:connected` from A. */
  connected: number;
  /** Received at least one sequenced message. */
  warm: number;
  dropped: number;
  /** Got `pushlet:connected` from B after the drop. */
  reconnected: number;
  caughtUp: number;
  /** Clients short of the published totals given by `expect`. */
  pending: number;
}

/** Per-client times, in µs relative to the kill, for the clients that have them. */
export interface StormTimes {
  dropped: number[];
  /** Of the attempt that got through: its TCP handshake, then the HTTP answer (101 or 200), then `pushlet:connected`. */
  tcpConnect: number[];
  httpAccept: number[];
  sessionStart: number[];
  reconnected: number[];
  caughtUp: number[];
  /** Receipt of the last message published before the client's reconnection that it got after its drop (from history, or in flight). */
  replayed: number[];
}

export interface StormCounts {
  clients: number;
  received: number;
  /** Gaps in a topic's sequence that no `pushlet:reset` announced, during the run. */
  missing: number;
  /** Messages published (by the totals) that a reconnected client never received by the end. */
  tailMissing: number;
  /** Messages published (by the totals) that clients never reconnected to B did not receive. */
  undelivered: number;
  duplicates: number;
  reorders: number;
  resets: number;
  /** Messages skipped after a `pushlet:reset` (announced, so not missing). */
  skippedByReset: number;
  /** Reconnection attempts (the first one after the drop included) and the failed ones. */
  attempts: number;
  failedAttempts: number;
  /** Clients dropped more than once (by B too). */
  droppedTwice: number;
  /** `pushlet:error` frames, unparsable frames, first frames of a stream that were not `pushlet:connected`. */
  errors: number;
  notReconnected: number;
  notCaughtUp: number;
  /** Messages the clients got after the drop that were published before their reconnection (from history, or in flight). */
  replayedMessages: number;
  /** Messages received from B up to the end of the storm window (replayed and live). */
  windowDeliveries: number;
}

export interface StormCollected {
  counts: StormCounts;
  times: StormTimes;
  /** Samples of what went wrong with messages, and of what happened to connections. */
  problems: string[];
  notes: string[];
  cpuUs: number;
}

const DATA_MARK = Buffer.from('@@M');
/** What went wrong with messages (gaps, copies, reorders, resets, errors): kept first. */
const problems: string[] = [];
const problem = (text: string) => {
  if (problems.length < 12) problems.push(text.slice(0, 300));
};
/** What happened to connections (failed attempts, drops by B). */
const notes: string[] = [];
const sample = (text: string) => {
  if (notes.length < 8) notes.push(text.slice(0, 300));
};

/** One connection attempt of a client: a {@link Connection} that hands every whole frame to its client. */
class StormConnection extends Connection {
  constructor(
    protocol: 'ws' | 'sse',
    topic: string,
    private readonly client: StormClient,
    private readonly lastEventId: string | undefined,
  ) {
    super(protocol, topic, client);
  }

  protected override request(host: string, port: number, path: string): string {
    const head = super.request(host, port, path);
    if (this.protocol !== 'sse' || this.lastEventId === undefined) return head;
    return head.replace(/\r\n\r\n$/, `\r\nLast-Event-ID: ${this.lastEventId}\r\n\r\n`);
  }

  protected override streamEnded(): void {
    // The server ended the stream (e.g. `retry:` while history could not be read): a drop.
    this.socket?.destroy();
  }

  /**
   * Finds the id, the event and, in a sequenced message, `@@M<seq>.<µs>.` by scanning the bytes
   * (the load clients share the machine with the servers: the cheaper per frame, the better);
   * control frames, a few per connection, are decoded in full.
   */
  protected override onPayload(buffer: Buffer, start: number, end: number, receivedUs: number): void {
    const ws = this.protocol === 'ws';
    const id = ws ? jsonField(buffer, start, end, WS_ID) : sseField(buffer, start, end, SSE_ID);
    const event = (ws ? jsonField(buffer, start, end, WS_EVENT) : sseField(buffer, start, end, SSE_EVENT)) ?? (ws ? undefined : 'message');
    if (event === undefined) return this.client.malformed(this, `no event: ${buffer.toString('utf8', start, Math.min(end, start + 120))}`);
    const mark = event === 'bench' ? buffer.indexOf(DATA_MARK, start) : -1;
    if (mark >= 0 && mark < end) {
      let pos = mark + DATA_MARK.length;
      let seq = 0;
      for (let c = buffer[pos]!; c !== DOT && pos < end; c = buffer[++pos]!) seq = seq * 10 + (c - 48);
      let publishedUs = 0;
      for (let c = buffer[++pos]!; c !== DOT && pos < end; c = buffer[++pos]!) publishedUs = publishedUs * 10 + (c - 48);
      return this.client.message(this, id, seq, publishedUs, receivedUs);
    }
    if (!ws && id === undefined && sseField(buffer, start, end, SSE_DATA) === undefined) return; // `retry:` and the like
    this.client.notice(this, id, event, ws ? jsonData(buffer.toString('utf8', start, end)) : sseData(buffer.toString('utf8', start, end)), receivedUs);
  }
}

const DOT = 0x2e;
const QUOTE = 0x22;
const NEWLINE = 0x0a;
const WS_ID = Buffer.from('"id":"');
const WS_EVENT = Buffer.from('"event":"');
const SSE_ID = Buffer.from('id: ');
const SSE_EVENT = Buffer.from('event: ');
const SSE_DATA = Buffer.from('data: ');

/** A JSON string field without escapes (ids, event names); a quote inside a JSON string is escaped, so no value can fake the key. */
function jsonField(buffer: Buffer, start: number, end: number, key: Buffer): string | undefined {
  const at = buffer.indexOf(key, start);
  if (at < 0 || at >= end) return undefined;
  const from = at + key.length;
  const to = buffer.indexOf(QUOTE, from);
  return to < 0 || to > end ? undefined : buffer.toString('latin1', from, to);
}

/** The value of an SSE field line (`id: `, `event: `) of a frame. */
function sseField(buffer: Buffer, start: number, end: number, key: Buffer): string | undefined {
  let at = start;
  while (at < end) {
    if (buffer.compare(key, 0, key.length, at, at + key.length) === 0) {
      const to = buffer.indexOf(NEWLINE, at);
      return buffer.toString('utf8', at + key.length, to < 0 || to > end ? end : to);
    }
    const next = buffer.indexOf(NEWLINE, at);
    if (next < 0 || next >= end) return undefined;
    at = next + 1;
  }
  return undefined;
}

function jsonData(text: string): string {
  try {
    const data = (JSON.parse(text) as { data?: unknown }).data;
    return typeof data === 'string' ? data : '';
  } catch {
    return '';
  }
}

function sseData(text: string): string {
  return text
    .split('\n')
    .filter((line) => line.startsWith('data: '))
    .map((line) => line.slice(6))
    .join('\n');
}

/** One simulated user: its successive connections, the id it would resume from, and what it saw. */
class StormClient implements Sink {
  lastId: string | undefined;
  connection: StormConnection | undefined;
  /** Which instance the current connection is to. */
  server: 'A' | 'B' = 'A';
  connectedA = false;
  droppedUs = 0;
  drops = 0;
  connectedBUs = 0;
  caughtUpUs = 0;
  /** The attempt that got through to B: started, TCP connected, HTTP accepted (101 or 200). */
  attemptUs = 0;
  tcpUs = 0;
  acceptedUs = 0;
  attempts = 0;
  failedAttempts = 0;
  errors = 0;
  received = 0;
  duplicates = 0;
  reorders = 0;
  resets = 0;
  skippedByReset = 0;
  /** Sequence numbers before `last` not received (and not announced by a reset). */
  holes = 0;
  last = -1;
  private seen = new Uint8Array(64);
  private resetPending = false;
  /** (publish µs, receipt µs) of every message received after the drop. */
  readonly afterDrop: number[] = [];
  private retryTimer: NodeJS.Timeout | undefined;
  stopped = false;

  constructor(
    readonly target: StormTarget,
    readonly topic: string,
  ) {}

  open(): Promise<void> {
    return this.connect('A');
  }

  /** One attempt; resolves once the server has accepted the request (101 or 200), not `pushlet:connected`. */
  private connect(server: 'A' | 'B'): Promise<void> {
    const t = this.target;
    this.server = server;
    const port = server === 'A' ? t.portA : t.portB;
    const topic = encodeURIComponent(this.topic);
    const resume = this.lastId !== undefined && t.protocol === 'ws' ? `&lastEventId=${encodeURIComponent(this.lastId)}` : '';
    const path = t.protocol === 'ws' ? `/ws?topic=${topic}${resume}` : `/events?topic=${topic}`;
    const connection = new StormConnection(t.protocol, this.topic, this, server === 'B' ? this.lastId : undefined);
    this.connection = connection;
    return connection.open(t.host, port, path, t.localAddress, t.timeoutMs);
  }

  private reconnectLater(delayMs: number): void {
    if (this.stopped) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.attempts += 1;
      const attemptUs = nowUs();
      let tcpUs = 0;
      const opening = this.connect('B');
      this.connection?.socket?.once('connect', () => (tcpUs = nowUs()));
      opening.then(() => {
        this.attemptUs = attemptUs;
        this.tcpUs = tcpUs;
        this.acceptedUs = nowUs();
      }, (error: unknown) => {
        this.failedAttempts += 1;
        if (this.failedAttempts <= 2) sample(`reconnect failed (${this.topic}): ${error instanceof Error ? error.message : String(error)}`);
        const ceiling = Math.min(this.target.backoffMaxMs, this.target.backoffBaseMs * 2 ** Math.min(10, this.failedAttempts));
        this.reconnectLater(Math.random() * ceiling);
      });
    }, delayMs);
  }

  // ---- Sink: what the connection reports ----

  measured(): void {}

  heartbeat(): void {}

  malformed(_connection: Connection, why: string): void {
    this.errors += 1;
    problem(`malformed (${this.topic}): ${why}`);
  }

  unexpectedClose(connection: Connection, reason: string): void {
    if (connection !== this.connection || this.stopped) return;
    this.drops += 1;
    if (this.server === 'B') sample(`dropped by B (${this.topic}, ${connection.protocol}, ${this.drops} drops): ${reason}`);
    if (this.droppedUs === 0) this.droppedUs = nowUs();
    this.reconnectLater(this.drops === 1 ? Math.random() * this.target.jitterMs : Math.random() * this.target.backoffBaseMs);
  }

  /** A control frame or an unsequenced message (warm-up). */
  notice(connection: Connection, id: string | undefined, event: string, data: string, receivedUs: number): void {
    if (connection !== this.connection) return;
    if (id !== undefined) this.lastId = id;
    if (event === 'pushlet:connected') {
      if (this.server === 'A') this.connectedA = true;
      else if (this.connectedBUs === 0) this.connectedBUs = receivedUs;
    } else if (event === 'pushlet:reset') {
      this.resets += 1;
      this.resetPending = true;
      problem(`reset (${this.topic}, ${connection.protocol}, from ${this.server}): ${data}`);
    } else if (event === 'pushlet:error') {
      this.errors += 1;
      problem(`pushlet:error (${this.topic}): ${data}`);
    }
  }

  /** A sequenced message: its id, the per-topic sequence number and publish time from its data. */
  message(connection: Connection, id: string | undefined, seq: number, publishedUs: number, receivedUs: number): void {
    if (connection !== this.connection) return;
    if (id !== undefined) this.lastId = id;
    this.track(seq, publishedUs, receivedUs);
  }

  private track(seq: number, publishedUs: number, receivedUs: number): void {
    const byte = seq >> 3;
    const bit = 1 << (seq & 7);
    if (byte >= this.seen.length) {
      const grown = new Uint8Array(2 ** Math.ceil(Math.log2(byte + 1)));
      grown.set(this.seen);
      this.seen = grown;
    }
    if (this.seen[byte]! & bit) {
      this.duplicates += 1;
      if (this.duplicates <= 2) problem(`duplicate (${this.topic}, ${this.target.protocol}, from ${this.server}): seq ${seq}, last ${this.last}`);
      return;
    }
    this.seen[byte]! |= bit;
    this.received += 1;
    if (seq > this.last) {
      const gap = seq - this.last - 1;
      if (gap > 0 && this.resetPending) this.skippedByReset += gap;
      else if (gap > 0) {
        this.holes += gap;
        problem(`gap (${this.topic}, ${this.target.protocol}, from ${this.server}): ${gap} before seq ${seq}`);
      }
      this.last = seq;
    } else {
      this.reorders += 1;
      if (this.holes > 0) this.holes -= 1;
      else if (this.skippedByReset > 0) this.skippedByReset -= 1;
      problem(`out of order (${this.topic}, ${this.target.protocol}, from ${this.server}): seq ${seq} after ${this.last}`);
    }
    this.resetPending = false;
    if (this.droppedUs > 0) this.afterDrop.push(publishedUs, receivedUs);
    // Caught up: the first message published after its reconnection, with every earlier one.
    if (this.connectedBUs > 0 && this.caughtUpUs === 0 && this.holes === 0 && publishedUs >= this.connectedBUs) this.caughtUpUs = receivedUs;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    if (this.connection) {
      this.connection.closing = true;
      this.connection.socket?.destroy();
    }
  }
}

const clients: StormClient[] = [];
let expected: Record<string, number> | undefined;
let progressTimer: NodeJS.Timeout | undefined;
const cpuAtStart = process.cpuUsage();

async function openAll(target: StormTarget): Promise<{ opened: number; failed: number; errors: string[]; elapsedMs: number }> {
  const started = Date.now();
  let next = 0;
  let opened = 0;
  let failed = 0;
  const errors: string[] = [];
  const worker = async () => {
    while (next < target.count) {
      const index = next++;
      const client = new StormClient(target, target.topicPrefix + ((target.topicFirst + index) % target.topics));
      clients.push(client);
      try {
        await client.open();
        opened += 1;
      } catch (error) {
        failed += 1;
        client.stopped = true;
        if (errors.length < 5) errors.push(error instanceof Error ? error.message : String(error));
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(target.concurrency, target.count)) }, worker));
  return { opened, failed, errors, elapsedMs: Date.now() - started };
}

function progress(): StormProgress {
  const p: StormProgress = { clients: clients.length, connected: 0, warm: 0, dropped: 0, reconnected: 0, caughtUp: 0, pending: 0 };
  for (const c of clients) {
    if (c.connectedA) p.connected += 1;
    if (c.last >= 0) p.warm += 1;
    if (c.droppedUs > 0) p.dropped += 1;
    if (c.connectedBUs > 0) p.reconnected += 1;
    if (c.caughtUpUs > 0) p.caughtUp += 1;
    if (expected && c.last < (expected[c.topic] ?? 0) - 1) p.pending += 1;
  }
  return p;
}

function collect(args: { killUs: number; endUs: number; totals: Record<string, number> }): StormCollected {
  const counts: StormCounts = {
    clients: clients.length,
    received: 0,
    missing: 0,
    tailMissing: 0,
    undelivered: 0,
    duplicates: 0,
    reorders: 0,
    resets: 0,
    skippedByReset: 0,
    attempts: 0,
    failedAttempts: 0,
    droppedTwice: 0,
    errors: 0,
    notReconnected: 0,
    notCaughtUp: 0,
    replayedMessages: 0,
    windowDeliveries: 0,
  };
  const times: StormTimes = { dropped: [], tcpConnect: [], httpAccept: [], sessionStart: [], reconnected: [], caughtUp: [], replayed: [] };
  const rel = (us: number) => us - args.killUs;
  const shortByTopic = new Map<string, { clients: number; messages: number }>();
  for (const c of clients) {
    counts.received += c.received;
    counts.missing += c.holes;
    const short = Math.max(0, (args.totals[c.topic] ?? 0) - 1 - c.last);
    if (c.connectedBUs > 0) {
      counts.tailMissing += short;
      if (short > 0) {
        const entry = shortByTopic.get(c.topic) ?? { clients: 0, messages: 0 };
        entry.clients += 1;
        entry.messages += short;
        shortByTopic.set(c.topic, entry);
      }
    } else counts.undelivered += short;
    counts.duplicates += c.duplicates;
    counts.reorders += c.reorders;
    counts.resets += c.resets;
    counts.skippedByReset += c.skippedByReset;
    counts.attempts += c.attempts;
    counts.failedAttempts += c.failedAttempts;
    counts.errors += c.errors;
    if (c.drops > 1) counts.droppedTwice += 1;
    if (c.droppedUs > 0) times.dropped.push(rel(c.droppedUs));
    if (c.acceptedUs > 0 && c.tcpUs > 0) {
      times.tcpConnect.push(c.tcpUs - c.attemptUs);
      times.httpAccept.push(c.acceptedUs - c.tcpUs);
    }
    if (c.connectedBUs > 0 && c.acceptedUs > 0) times.sessionStart.push(c.connectedBUs - c.acceptedUs);
    if (c.connectedBUs > 0) times.reconnected.push(rel(c.connectedBUs));
    else counts.notReconnected += 1;
    if (c.caughtUpUs > 0) times.caughtUp.push(rel(c.caughtUpUs));
    else counts.notCaughtUp += 1;
    let replayedUs = 0;
    for (let i = 0; i < c.afterDrop.length; i += 2) {
      if (c.afterDrop[i + 1]! <= args.endUs) counts.windowDeliveries += 1;
      if (c.connectedBUs === 0 || c.afterDrop[i]! >= c.connectedBUs) continue;
      counts.replayedMessages += 1;
      if (c.afterDrop[i + 1]! > replayedUs) replayedUs = c.afterDrop[i + 1]!;
    }
    if (replayedUs > 0) times.replayed.push(rel(replayedUs));
  }
  const cpu = process.cpuUsage(cpuAtStart);
  const stalled = [...shortByTopic].sort((a, b) => b[1].messages - a[1].messages).slice(0, 5);
  for (const [topic, { clients, messages }] of stalled) {
    problem(`short at the end (${topic}): ${clients} reconnected clients miss ${messages} messages in all`);
  }
  return { counts, times, problems: problems.slice(), notes: notes.slice(), cpuUs: cpu.user + cpu.system };
}

serveCommands({
  open: (target: StormTarget) => openAll(target),

  /** Progress notices every `intervalMs` (0 stops them); answers the progress now. */
  watch: (args: { intervalMs: number }) => {
    if (progressTimer) clearInterval(progressTimer);
    progressTimer = args.intervalMs > 0 ? setInterval(() => notify('progress', progress()), args.intervalMs) : undefined;
    return progress();
  },

  /** Published count per topic: `pending` counts clients short of it. */
  expect: (args: { totals: Record<string, number> }) => {
    expected = args.totals;
    return progress();
  },

  collect: (args: { killUs: number; endUs: number; totals: Record<string, number> }) => collect(args),

  exit: () => {
    for (const client of clients) client.stop();
    setImmediate(() => process.exit(0));
    return true;
  },
});
notify('ready', { pid: process.pid });
