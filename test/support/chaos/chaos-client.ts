import { performance } from 'node:perf_hooks';
import { openSse, openWs, type ChaosFrame, type StreamConnection, type Transport } from './stream-connections.js';

/** Everything one client observed, in arrival order, across all its connections. */
export type ClientRecord =
  | { readonly kind: 'open'; readonly at: number; readonly conn: number; readonly instance: string; readonly resumeId: string | undefined }
  | { readonly kind: 'connected'; readonly at: number; readonly conn: number; readonly id: string | undefined }
  | { readonly kind: 'message'; readonly at: number; readonly conn: number; readonly topic: string; readonly seq: number; readonly id: string | undefined }
  | { readonly kind: 'reset'; readonly at: number; readonly conn: number; readonly topics: readonly string[]; readonly reason: string }
  | { readonly kind: 'odd'; readonly at: number; readonly conn: number; readonly what: string }
  | { readonly kind: 'closed'; readonly at: number; readonly conn: number; readonly cause: string };

/** One connection of a client: where it went and from which position it resumed. */
export interface ConnectionInfo {
  readonly conn: number;
  readonly instance: string;
  readonly resumeId: string | undefined;
  /** When the client obtained its resume id (or opened the connection, for a fresh one). */
  readonly baseline: number;
  readonly openedAt: number;
}

export interface Endpoint {
  readonly name: string;
  readonly url: string;
}

/**
 * A client that stays subscribed to its topics over one transport, reconnecting (after a short
 * random delay, to a random instance) whenever its connection ends, with the last id it saw, as
 * `EventSource` does for SSE and as a WebSocket client should.
 */
export class ChaosClient {
  readonly records: ClientRecord[] = [];
  /** Every connection that opened, by number. */
  readonly connections = new Map<number, ConnectionInfo>();
  /** The resume id: the last id a frame carried (see {@link StreamHandlers.id}). */
  lastId: string | undefined;
  lastIdAt = 0;
  /** Highest seq received per topic (for catch-up polling). */
  readonly highest = new Map<string, number>();
  reconnects = 0;
  failedAttempts = 0;
  /** Diagnostics (`CHAOS_DEBUG`): told of every `pushlet:reset` as it arrives. */
  onReset: ((record: Extract<ClientRecord, { kind: 'reset' }>) => void) | undefined;
  private current: StreamConnection | undefined;
  private currentConn = 0;
  private connectedNow = false;
  private stopped = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;

  constructor(
    readonly name: string,
    readonly transport: Transport,
    readonly topics: readonly string[],
    private readonly endpoints: () => readonly Endpoint[],
    private readonly random: () => number,
  ) {}

  /** True while a connection is open and has said `pushlet:connected`. */
  get connected(): boolean {
    return this.connectedNow;
  }

  start(): void {
    this.loop = this.run();
  }

  /** Closes the current connection (politely, or with a TCP reset); the client reconnects. */
  drop(abrupt: boolean): void {
    const connection = this.current;
    if (!connection || !this.connectedNow) return;
    if (abrupt) connection.destroy();
    else connection.close();
  }

  /** Stops reconnecting and closes the connection; resolves once the loop has ended. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.current?.destroy();
    this.wake?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    let first = true;
    while (!this.stopped) {
      if (!first) await this.pause(10 + this.random() * 240);
      first = false;
      if (this.stopped) break;
      const endpoints = this.endpoints();
      const endpoint = endpoints[Math.floor(this.random() * endpoints.length)]!;
      const ended = await this.connectOnce(endpoint);
      if (ended === 'failed') {
        this.failedAttempts += 1;
        continue;
      }
      this.reconnects += 1;
    }
  }

  /** One connection, from opening to its end. */
  private async connectOnce(endpoint: Endpoint): Promise<'failed' | 'ended'> {
    const conn = ++this.currentConn;
    const resumeId = this.lastId;
    const openedAt = performance.now();
    let closedResolve!: () => void;
    const closed = new Promise<void>((resolve) => (closedResolve = resolve));
    const handlers = {
      id: (id: string) => {
        if (conn !== this.currentConn) return;
        this.lastId = id;
        this.lastIdAt = performance.now();
      },
      frame: (frame: ChaosFrame) => {
        if (conn === this.currentConn) this.onFrame(conn, frame);
      },
      closed: (cause: string) => {
        if (conn === this.currentConn && this.current) this.records.push({ kind: 'closed', at: performance.now(), conn, cause });
        if (conn === this.currentConn) this.connectedNow = false;
        closedResolve();
      },
    };
    const options = { baseUrl: endpoint.url, topics: this.topics, lastEventId: resumeId, timeoutMs: 5_000 };
    // Recorded first: frames may arrive before the open promise settles.
    this.connections.set(conn, { conn, instance: endpoint.name, resumeId, baseline: resumeId ? this.lastIdAt : openedAt, openedAt });
    this.records.push({ kind: 'open', at: openedAt, conn, instance: endpoint.name, resumeId });
    try {
      this.current = await (this.transport === 'sse' ? openSse(options, handlers) : openWs(options, handlers));
    } catch {
      this.current = undefined;
      this.connections.delete(conn);
      const index = this.records.findIndex((r) => r.kind === 'open' && r.conn === conn);
      // Nothing can have arrived on a connection that never opened.
      if (index >= 0) this.records.splice(index, 1);
      return 'failed';
    }
    if (this.stopped) this.current.destroy();
    await closed;
    this.current = undefined;
    return 'ended';
  }

  private onFrame(conn: number, frame: ChaosFrame): void {
    const at = performance.now();
    if (frame.event === 'pushlet:connected') {
      this.connectedNow = true;
      this.records.push({ kind: 'connected', at, conn, id: this.lastId });
      return;
    }
    if (frame.event === 'pushlet:reset') {
      let topics: string[] = [];
      let reason = '';
      try {
        const parsed = JSON.parse(frame.data) as { topics?: unknown; reason?: unknown };
        topics = Array.isArray(parsed.topics) ? parsed.topics.map(String) : [];
        reason = String(parsed.reason ?? '');
      } catch {
        this.records.push({ kind: 'odd', at, conn, what: `unparsable pushlet:reset data ${JSON.stringify(frame.data)}` });
      }
      const record = { kind: 'reset', at, conn, topics, reason } as const;
      this.records.push(record);
      this.onReset?.(record);
      return;
    }
    if (frame.event.startsWith('pushlet:')) {
      if (frame.event === 'pushlet:error') this.records.push({ kind: 'odd', at, conn, what: `pushlet:error ${frame.data}` });
      return;
    }
    let body: { topic?: unknown; seq?: unknown };
    try {
      body = JSON.parse(frame.data) as { topic?: unknown; seq?: unknown };
    } catch {
      this.records.push({ kind: 'odd', at, conn, what: `${frame.event} frame with data ${JSON.stringify(frame.data).slice(0, 100)}` });
      return;
    }
    const topic = String(body.topic);
    const seq = Number(body.seq);
    if (!this.topics.includes(topic) || !Number.isInteger(seq) || (frame.topic !== undefined && frame.topic !== topic)) {
      this.records.push({ kind: 'odd', at, conn, what: `unexpected message ${frame.data} (frame topic ${String(frame.topic)})` });
      return;
    }
    this.records.push({ kind: 'message', at, conn, topic, seq, id: this.lastId });
    if (seq > (this.highest.get(topic) ?? 0)) this.highest.set(topic, seq);
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }
}
