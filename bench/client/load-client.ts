/**
 * A load-client process: many raw connections (client/connection.ts) to one server, every
 * measured message timed and counted, reported to the orchestrator. Several run at once, each
 * with its own source address (127.x.y.z), to spread connections over processes and port ranges.
 *
 * The same process runs the reconnect storm's clients (bench/reconnect-storm.ts, `open` with
 * `portB`): each keeps the id of the last message it saw, notices when instance A dies, and
 * reconnects to B with that id after a random delay, as a real client's backoff jitter would.
 * Every frame is parsed (ids, control events, the per-topic sequence number in each message's
 * data) and every message checked: missing, twice, out of order, or skipped by a `pushlet:reset`.
 */
import { Histogram } from '../lib/stats.js';
import { notify, serveCommands } from '../lib/ipc.js';
import { nowUs } from '../lib/proc.js';
import { Connection, Ledger, openInParallel, readMark, type Protocol, type Sink } from './connection.js';

export interface Target {
  protocol: Protocol;
  host: string;
  port: number;
  /** Request path up to the topic, e.g. `/ws?topic=`. */
  pathPrefix: string;
  /** Connection i subscribes to `topic`, or to `topicPrefix + ((topicFirst + i) % topicModulo)`. */
  topic?: string;
  topicPrefix?: string;
  topicFirst?: number;
  topicModulo?: number;
  localAddress?: string;
}

export type OpenResult = Awaited<ReturnType<typeof openInParallel>>;
export type CollectResult = ReturnType<typeof collect>;
export type ChurnResult = Awaited<ReturnType<typeof churn>>;

const connections: Connection[] = [];
const histogram = new Histogram();
let received = 0;
let lastReceivedUs = 0;
let heartbeats = 0;
let unexpectedCloses = 0;
let malformed = 0;
const samples: string[] = [];
let cpuAtReset = process.cpuUsage();
let resetAtUs = nowUs();
let expected: Record<string, number> | undefined;
let progressTimer: NodeJS.Timeout | undefined;

/** Samples of what went wrong: with the storm, gaps, copies, reorders, resets and errors. */
const sample = (text: string) => {
  if (samples.length < (storm.length ? 12 : 10)) samples.push(text.slice(0, 300));
};
const errorText = (error: unknown) => (error instanceof Error ? error.message : String(error));
const cpuUs = (since: NodeJS.CpuUsage) => {
  const usage = process.cpuUsage(since);
  return usage.user + usage.system;
};

const sink: Sink = {
  measured(_connection, _seq, publishedUs, receivedUs) {
    received += 1;
    if (receivedUs > lastReceivedUs) lastReceivedUs = receivedUs;
    histogram.record(receivedUs - publishedUs);
  },
  unexpectedClose(connection, reason) {
    unexpectedCloses += 1;
    sample(`unexpected close (${connection.topic}): ${reason}`);
  },
  heartbeat() {
    heartbeats += 1;
  },
  malformed(connection, why) {
    malformed += 1;
    sample(`malformed (${connection.topic}): ${why}`);
  },
};

function topicOf(target: Target, index: number): string {
  if (target.topicPrefix === undefined) return target.topic ?? 'default';
  const n = (target.topicFirst ?? 0) + index;
  return target.topicPrefix + (target.topicModulo ? n % target.topicModulo : n);
}

/** A connection to `target`'s topic number `index`, opening (resolves once established). */
function connectTo(target: Target, index: number): [Connection, Promise<void>] {
  const connection = new Connection(target.protocol, topicOf(target, index), sink);
  return [connection, connection.open(target.host, target.port, target.pathPrefix + encodeURIComponent(connection.topic), target.localAddress, 15_000)];
}

function openMany(args: Target & { count: number; concurrency: number }) {
  return openInParallel(args.count, args.concurrency, async (index) => {
    const [connection, opened] = connectTo(args, index);
    await opened;
    connections.push(connection);
  });
}

function progress() {
  if (storm.length) return stormProgress();
  let warm = 0;
  let minLast = Infinity;
  let pending = 0;
  let open = 0;
  for (const connection of connections) {
    if (connection.closed) continue;
    open += 1;
    if (connection.warm) warm += 1;
    if (connection.last < minLast) minLast = connection.last;
    if (expected && connection.received < (expected[connection.topic] ?? 0)) pending += 1;
  }
  return { warm, open, minLast: minLast === Infinity ? -1 : minLast, pending, received, lastReceivedUs };
}

async function churn(args: Target & { durationMs: number; concurrency: number }) {
  const openLatency = new Histogram();
  const deadline = Date.now() + args.durationMs;
  let cycles = 0;
  let failures = 0;
  let counter = 0;
  const cpuBefore = process.cpuUsage();
  const startUs = nowUs();
  const closesBefore = unexpectedCloses;
  const worker = async () => {
    while (Date.now() < deadline) {
      const t0 = nowUs();
      const [connection, opened] = connectTo(args, counter++);
      try {
        await opened;
        openLatency.record(nowUs() - t0);
        await connection.close();
        cycles += 1;
      } catch (error) {
        failures += 1;
        sample(`churn: ${errorText(error)}`);
      }
    }
  };
  await Promise.all(Array.from({ length: args.concurrency }, worker));
  return {
    cycles,
    failures,
    openLatency: openLatency.summary(),
    cpuUs: cpuUs(cpuBefore),
    elapsedUs: nowUs() - startUs,
    unexpectedCloses: unexpectedCloses - closesBefore,
    samples: samples.slice(),
  };
}

function collect(args: { totals?: Record<string, number> }) {
  const totals = args.totals ?? expected ?? {};
  const integrity = { expected: 0, received: 0, lost: 0, duplicates: 0, outOfOrder: 0, extra: 0 };
  let open = 0;
  for (const connection of connections) {
    if (!connection.closed) open += 1;
    const want = totals[connection.topic] ?? 0;
    integrity.expected += want;
    integrity.received += connection.received;
    integrity.lost += Math.max(0, want - connection.received);
    integrity.extra += Math.max(0, connection.received - want);
    integrity.duplicates += connection.duplicates;
    integrity.outOfOrder += connection.outOfOrder;
  }
  const histogramData = histogram.toJSON();
  return {
    open,
    received,
    lastReceivedUs,
    histogram: histogramData,
    cpuUs: cpuUs(cpuAtReset),
    elapsedUs: nowUs() - resetAtUs,
    heartbeats,
    unexpectedCloses,
    malformed,
    samples: samples.slice(),
    integrity,
  };
}

// ---- the reconnect storm ----------------------------------------------------------------------

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
  concurrency: number;
  /** First reconnection after a drop: a uniform random delay in [0, jitterMs). */
  jitterMs: number;
  /** Later attempts (after a failed one): full jitter, uniform in [0, min(backoffMaxMs, backoffBaseMs × 2^n)). */
  backoffBaseMs: number;
  backoffMaxMs: number;
  timeoutMs: number;
}

/** connected: `pushlet:connected` from A; warm: a sequenced message; reconnected: `pushlet:connected` from B; pending: short of the totals given by `expect`. */
const STORM_PROGRESS = { clients: 0, connected: 0, warm: 0, dropped: 0, reconnected: 0, caughtUp: 0, pending: 0 };
export type StormProgress = typeof STORM_PROGRESS;
/**
 * Per-client times in µs from the kill. Of the attempt that got through: its TCP handshake, then
 * the HTTP answer (101 or 200), then `pushlet:connected`. replayed: receipt of the last message
 * published before the client's reconnection that it got after its drop (from history, or in flight).
 */
const TIMES = ['dropped', 'tcpConnect', 'httpAccept', 'sessionStart', 'reconnected', 'caughtUp', 'replayed'] as const;
export type StormTimes = Record<(typeof TIMES)[number], number[]>;
/**
 * missing: gaps no `pushlet:reset` announced; tailMissing: messages (by the totals) a reconnected
 * client never received; undelivered: the same for clients never reconnected; skippedByReset:
 * announced gaps; attempts: reconnection attempts (the first after the drop included);
 * droppedTwice: dropped by B too; errors: `pushlet:error`, bad frames; replayedMessages: got after
 * the drop, published before the reconnection; windowDeliveries: from B up to the storm window's end.
 */
const COUNTS = {
  clients: 0,
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
export type StormCounts = typeof COUNTS;
export type StormCollected = ReturnType<typeof stormCollect>;

/** Why connections to B were dropped, and why attempts failed, with their counts. */
const dropReasons = new Map<string, number>();
const failureReasons = new Map<string, number>();
const countReason = (reasons: Map<string, number>, key: string) => reasons.set(key, (reasons.get(key) ?? 0) + 1);

const QUOTE = 0x22;
const NEWLINE = 0x0a;
const DATA_MARK = Buffer.from('@@M');
const WS_ID = Buffer.from('"id":"');
const WS_EVENT = Buffer.from('"event":"');
const SSE_ID = Buffer.from('id: ');
const SSE_EVENT = Buffer.from('event: ');
const SSE_DATA = Buffer.from('data: ');

/** A JSON string field without escapes (ids, event names); a quote inside a JSON string is escaped, so no value can fake the key. */
function jsonField(buffer: Buffer, start: number, end: number, key: Buffer): string | undefined {
  const at = buffer.indexOf(key, start);
  if (at < 0 || at >= end) return undefined;
  const to = buffer.indexOf(QUOTE, at + key.length);
  return to < 0 || to > end ? undefined : buffer.toString('latin1', at + key.length, to);
}

/** The value of an SSE field line (`id: `, `event: `) of a frame. */
function sseField(buffer: Buffer, start: number, end: number, key: Buffer): string | undefined {
  for (let at = start; at < end;) {
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

function frameData(ws: boolean, text: string): string {
  if (!ws)
    return text
      .split('\n')
      .filter((line) => line.startsWith('data: '))
      .map((line) => line.slice(6))
      .join('\n');
  try {
    const data = (JSON.parse(text) as { data?: unknown }).data;
    return typeof data === 'string' ? data : '';
  } catch {
    return '';
  }
}

/** One connection attempt of a storm client: a {@link Connection} that hands every whole frame to its client. */
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

  /** Id, event and `@@M<seq>.<µs>.` found by scanning the bytes (cheap per frame); control frames, a few per connection, decoded in full. */
  protected override onPayload(buffer: Buffer, start: number, end: number, receivedUs: number): void {
    const ws = this.protocol === 'ws';
    const id = ws ? jsonField(buffer, start, end, WS_ID) : sseField(buffer, start, end, SSE_ID);
    const event = (ws ? jsonField(buffer, start, end, WS_EVENT) : sseField(buffer, start, end, SSE_EVENT)) ?? (ws ? undefined : 'message');
    if (event === undefined) return this.client.malformed(this, `no event: ${buffer.toString('utf8', start, Math.min(end, start + 120))}`);
    const mark = event === 'bench' ? buffer.indexOf(DATA_MARK, start) : -1;
    if (mark >= 0 && mark < end) {
      const { seq, publishedUs } = readMark(buffer, mark + DATA_MARK.length, end);
      return this.client.message(this, id, seq, publishedUs, receivedUs);
    }
    if (!ws && id === undefined && sseField(buffer, start, end, SSE_DATA) === undefined) return; // `retry:` and the like
    this.client.notice(this, id, event, frameData(ws, buffer.toString('utf8', start, end)), receivedUs);
  }
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
  private readonly seen = new Ledger();
  private resetPending = false;
  /** (publish µs, receipt µs) of every message received after the drop. */
  readonly afterDrop: number[] = [];
  private retryTimer: NodeJS.Timeout | undefined;
  stopped = false;

  constructor(
    readonly target: StormTarget,
    readonly topic: string,
  ) {}

  /** One attempt; resolves once the server has accepted the request (101 or 200), not `pushlet:connected`. */
  connect(server: 'A' | 'B'): Promise<void> {
    const t = this.target;
    this.server = server;
    const topic = encodeURIComponent(this.topic);
    const resume = this.lastId !== undefined && t.protocol === 'ws' ? `&lastEventId=${encodeURIComponent(this.lastId)}` : '';
    const path = t.protocol === 'ws' ? `/ws?topic=${topic}${resume}` : `/events?topic=${topic}`;
    this.connection = new StormConnection(t.protocol, this.topic, this, server === 'B' ? this.lastId : undefined);
    return this.connection.open(t.host, server === 'A' ? t.portA : t.portB, path, t.localAddress, t.timeoutMs);
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
      opening.then(
        () => {
          this.attemptUs = attemptUs;
          this.tcpUs = tcpUs;
          this.acceptedUs = nowUs();
        },
        (error: unknown) => {
          this.failedAttempts += 1;
          countReason(failureReasons, `${this.target.protocol}: ${errorText(error).replace(/\d{4,}/g, 'N')}`);
          const ceiling = Math.min(this.target.backoffMaxMs, this.target.backoffBaseMs * 2 ** Math.min(10, this.failedAttempts));
          this.reconnectLater(Math.random() * ceiling);
        },
      );
    }, delayMs);
  }

  // ---- Sink: what the connection reports ----

  measured(): void {}

  heartbeat(): void {}

  malformed(_connection: Connection, why: string): void {
    this.errors += 1;
    sample(`malformed (${this.topic}): ${why}`);
  }

  unexpectedClose(connection: Connection, reason: string): void {
    if (connection !== this.connection || this.stopped) return;
    this.drops += 1;
    if (this.server === 'B') countReason(dropReasons, `${connection.protocol}: ${reason}`);
    if (this.droppedUs === 0) this.droppedUs = nowUs();
    this.reconnectLater(Math.random() * (this.drops === 1 ? this.target.jitterMs : this.target.backoffBaseMs));
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
      sample(`reset (${this.topic}, ${connection.protocol}, from ${this.server}): ${data}`);
    } else if (event === 'pushlet:error') {
      this.errors += 1;
      sample(`pushlet:error (${this.topic}): ${data}`);
    }
  }

  /** A sequenced message: its id, the per-topic sequence number and publish time from its data. */
  message(connection: Connection, id: string | undefined, seq: number, publishedUs: number, receivedUs: number): void {
    if (connection !== this.connection) return;
    if (id !== undefined) this.lastId = id;
    const where = `${this.topic}, ${this.target.protocol}, from ${this.server}`;
    if (!this.seen.add(seq)) {
      this.duplicates += 1;
      if (this.duplicates <= 2) sample(`duplicate (${where}): seq ${seq}, last ${this.last}`);
      return;
    }
    this.received += 1;
    if (seq > this.last) {
      const gap = seq - this.last - 1;
      if (gap > 0 && this.resetPending) this.skippedByReset += gap;
      else if (gap > 0) {
        this.holes += gap;
        sample(`gap (${where}): ${gap} before seq ${seq}`);
      }
      this.last = seq;
    } else {
      this.reorders += 1;
      if (this.holes > 0) this.holes -= 1;
      else if (this.skippedByReset > 0) this.skippedByReset -= 1;
      sample(`out of order (${where}): seq ${seq} after ${this.last}`);
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

const storm: StormClient[] = [];
const cpuAtStart = process.cpuUsage();

function openStorm(target: StormTarget) {
  return openInParallel(target.count, target.concurrency, async (index) => {
    const client = new StormClient(target, target.topicPrefix + ((target.topicFirst + index) % target.topics));
    storm.push(client);
    await client.connect('A').catch((error: unknown) => {
      client.stopped = true;
      throw error;
    });
  });
}

function stormProgress(): StormProgress {
  const p = { ...STORM_PROGRESS, clients: storm.length };
  for (const c of storm) {
    if (c.connectedA) p.connected += 1;
    if (c.last >= 0) p.warm += 1;
    if (c.droppedUs > 0) p.dropped += 1;
    if (c.connectedBUs > 0) p.reconnected += 1;
    if (c.caughtUpUs > 0) p.caughtUp += 1;
    if (expected && c.last < (expected[c.topic] ?? 0) - 1) p.pending += 1;
  }
  return p;
}

function stormCollect(args: { killUs: number; endUs: number; totals: Record<string, number> }) {
  const counts = { ...COUNTS, clients: storm.length };
  const times = Object.fromEntries(TIMES.map((key) => [key, [] as number[]])) as StormTimes;
  const rel = (us: number) => us - args.killUs;
  const shortByTopic = new Map<string, { clients: number; messages: number }>();
  for (const c of storm) {
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
    for (const key of ['duplicates', 'reorders', 'resets', 'skippedByReset', 'attempts', 'failedAttempts', 'errors'] as const) counts[key] += c[key];
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
  const stalled = [...shortByTopic].sort((a, b) => b[1].messages - a[1].messages).slice(0, 5);
  for (const [topic, { clients, messages }] of stalled) sample(`short at the end (${topic}): ${clients} reconnected clients miss ${messages} messages in all`);
  return {
    counts,
    times,
    problems: samples.slice(),
    dropReasons: Object.fromEntries(dropReasons),
    failureReasons: Object.fromEntries(failureReasons),
    cpuUs: cpuUs(cpuAtStart),
  };
}

serveCommands({
  open: (args: (Target & { count: number; concurrency: number }) | StormTarget) => ('portB' in args ? openStorm(args) : openMany(args)),

  /** Progress notices every `intervalMs` (0 stops them); answers the progress now. */
  watch: (args: { intervalMs: number }) => {
    if (progressTimer) clearInterval(progressTimer);
    progressTimer = args.intervalMs > 0 ? setInterval(() => notify('progress', progress()), args.intervalMs) : undefined;
    return progress();
  },

  /** Published count per topic so far; `progress().pending` counts connections or clients still short of it. */
  expect: (args: { totals: Record<string, number> }) => {
    expected = args.totals;
    return progress();
  },

  reset: () => {
    histogram.reset();
    received = 0;
    lastReceivedUs = 0;
    cpuAtReset = process.cpuUsage();
    resetAtUs = nowUs();
    return true;
  },

  collect: (args: { totals?: Record<string, number>; killUs?: number; endUs?: number }) =>
    args.killUs !== undefined ? stormCollect(args as Parameters<typeof stormCollect>[0]) : collect(args),

  churn: (args: Target & { durationMs: number; concurrency: number }) => churn(args),

  exit: () => {
    for (const client of storm) client.stop();
    for (const connection of connections) {
      connection.closing = true;
      connection.socket?.destroy();
    }
    setImmediate(() => process.exit(0));
    return true;
  },
});
notify('ready', { pid: process.pid });
