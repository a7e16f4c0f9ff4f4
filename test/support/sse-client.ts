import http, { type IncomingHttpHeaders } from 'node:http';
import { within } from './wait.js';

/** One event of an event stream, parsed as the HTML standard says a browser does. */
export interface SseEvent {
  id?: string;
  event: string;
  data: string;
}

/**
 * A real SSE reader over a real socket: parses the raw `text/event-stream` bytes field by field,
 * keeping comments (heartbeats) that `EventSource` hides.
 */
export class SseClient {
  readonly events: SseEvent[] = [];
  readonly comments: string[] = [];
  status = 0;
  headers: IncomingHttpHeaders = {};
  body = '';
  ended = false;
  /** The id a browser would send as Last-Event-ID on reconnect. */
  lastEventId = '';
  private request: http.ClientRequest | undefined;
  private response: http.IncomingMessage | undefined;
  private buffer = '';
  private current: { id?: string; event?: string; data: string[] } = { data: [] };
  private waiters: Array<() => void> = [];

  /** `localAddress`: the address to connect from (another loopback address, 127.0.0.2, looks like another client). */
  static async open(url: string, headers: Record<string, string> = {}, timeoutMs = 5_000, localAddress?: string): Promise<SseClient> {
    const client = new SseClient();
    await within(client.connect(url, headers, localAddress), timeoutMs, `response from ${url}`);
    return client;
  }

  private connect(url: string, headers: Record<string, string>, localAddress: string | undefined): Promise<void> {
    return new Promise((resolve, reject) => {
      const request = http.get(url, { headers: { Accept: 'text/event-stream', ...headers }, localAddress }, (response) => {
        this.response = response;
        this.status = response.statusCode ?? 0;
        this.headers = response.headers;
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => this.feed(chunk));
        response.on('end', () => this.finish());
        response.on('close', () => this.finish());
        response.on('error', () => this.finish());
        resolve();
      });
      request.on('error', (error) => {
        this.finish();
        reject(error);
      });
      this.request = request;
    });
  }

  /** Waits until `count` events (optionally of one name) have arrived. */
  async waitForEvents(count: number, ms = 5_000, name?: string): Promise<SseEvent[]> {
    const matching = () => (name ? this.events.filter((e) => e.event === name) : this.events);
    await this.waitUntil(() => matching().length >= count, ms, `${count} ${name ?? ''} events (have ${matching().length})`);
    return matching();
  }

  /** Waits for the first event that satisfies `predicate`. */
  async waitForEvent(predicate: (event: SseEvent) => boolean, ms = 5_000, what = 'event'): Promise<SseEvent> {
    await this.waitUntil(() => this.events.some(predicate), ms, what);
    return this.events.find(predicate)!;
  }

  async waitForComments(count: number, ms = 5_000): Promise<string[]> {
    await this.waitUntil(() => this.comments.length >= count, ms, `${count} comments`);
    return this.comments;
  }

  /** Waits (event-driven, bounded) until `check` holds after some input arrived. */
  async waitFor(check: () => boolean, ms: number, what: string): Promise<void> {
    await this.waitUntil(check, ms, what);
  }

  async waitForEnd(ms = 5_000): Promise<void> {
    await this.waitUntil(() => this.ended, ms, 'end of stream');
  }

  /** Messages only (no `pushlet:*` control events). */
  get messages(): SseEvent[] {
    return this.events.filter((e) => !e.event.startsWith('pushlet:'));
  }

  /** Stops reading from the socket, as a stalled client would. */
  pause(): void {
    this.response?.pause();
  }

  resume(): void {
    this.response?.resume();
  }

  close(): void {
    this.request?.destroy();
    this.finish();
  }

  private waitUntil(check: () => boolean, ms: number, what: string): Promise<void> {
    if (check()) return Promise.resolve();
    return within(
      new Promise<void>((resolve) => {
        const waiter = () => {
          if (check() || this.ended) {
            this.waiters = this.waiters.filter((w) => w !== waiter);
            resolve();
          }
        };
        this.waiters.push(waiter);
      }),
      ms,
      what,
    ).then(() => {
      if (!check()) throw new Error(`stream ended while waiting for ${what}`);
    });
  }

  private notify(): void {
    for (const waiter of [...this.waiters]) waiter();
  }

  private finish(): void {
    if (this.ended) return;
    this.ended = true;
    this.notify();
  }

  private feed(chunk: string): void {
    if (this.status !== 200) {
      this.body += chunk;
      return;
    }
    this.buffer += chunk;
    let index: number;
    while ((index = this.buffer.search(/\r\n|\r|\n/)) >= 0) {
      const breakLength = this.buffer.startsWith('\r\n', index) ? 2 : 1;
      // A lone CR at the end of a chunk may be the first half of CRLF.
      if (this.buffer[index] === '\r' && index === this.buffer.length - 1) break;
      const line = this.buffer.slice(0, index);
      this.buffer = this.buffer.slice(index + breakLength);
      this.line(line);
    }
    this.notify();
  }

  private line(line: string): void {
    if (line === '') return this.dispatch();
    if (line.startsWith(':')) {
      this.comments.push(line.slice(1).trimStart());
      return;
    }
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.current.data.push(value);
    else if (field === 'event') this.current.event = value;
    else if (field === 'id' && !value.includes('\0')) this.current.id = value;
  }

  private dispatch(): void {
    const { id, event, data } = this.current;
    this.current = { data: [] };
    if (id !== undefined) this.lastEventId = id;
    if (data.length === 0) return;
    this.events.push({ id, event: event || 'message', data: data.join('\n') });
  }
}
