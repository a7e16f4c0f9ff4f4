import http, { type IncomingHttpHeaders } from 'node:http';
import { StringDecoder } from 'node:string_decoder';
import { EventStreamParser, type StreamEvent } from './chaos/event-stream.js';
import { within } from './wait.js';

/**
 * An event stream read the way a browser reads it (the WHATWG parser in `chaos/event-stream.ts`),
 * keeping the raw decoded text too, so that a test can check both what a browser would dispatch
 * and that nothing from the request reached the wire as it came. `path` is sent as given
 * (percent-encode it yourself). Close it in `afterEach`.
 */
export class RawSseStream {
  status = 0;
  headers: IncomingHttpHeaders = {};
  /** Everything the server sent after the headers (the body of an error, or the stream), decoded as UTF-8. */
  raw = '';
  readonly events: StreamEvent[] = [];
  ended = false;
  private request: http.ClientRequest | undefined;
  private waiters: Array<() => void> = [];

  /** Opens a stream and waits for the response headers; `track` sees it first (for clean-up, even on failure). */
  static async open(
    base: string,
    path: string,
    headers: Record<string, string> = {},
    track?: (stream: RawSseStream) => void,
    ms = 5_000,
  ): Promise<RawSseStream> {
    const stream = new RawSseStream();
    track?.(stream);
    await within(stream.connect(base, path, headers), ms, `response to ${path.slice(0, 120)}`);
    return stream;
  }

  /** Only the dispatched events (a frame with no data dispatches nothing, as in a browser). */
  get dispatched(): StreamEvent[] {
    return this.events.filter((e) => e.data !== undefined);
  }

  named(event: string): StreamEvent[] {
    return this.dispatched.filter((e) => e.event === event);
  }

  async waitFor(check: () => boolean, ms: number, what: string): Promise<void> {
    if (check()) return;
    await within(
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
    );
    if (!check()) throw new Error(`stream ended while waiting for ${what}`);
  }

  /** Waits until `count` dispatched events named `event` have arrived. */
  async waitForNamed(event: string, count = 1, ms = 5_000): Promise<StreamEvent[]> {
    await this.waitFor(() => this.named(event).length >= count, ms, `${count} "${event}" events (have ${this.named(event).length})`);
    return this.named(event);
  }

  async waitForEnd(ms = 5_000): Promise<void> {
    await this.waitFor(() => this.ended, ms, 'end of response');
  }

  close(): void {
    this.request?.destroy();
    this.finish();
  }

  private connect(base: string, path: string, headers: Record<string, string>): Promise<void> {
    const { hostname, port } = new URL(base);
    return new Promise((resolve, reject) => {
      const request = http.get({ hostname, port, path, headers: { Accept: 'text/event-stream', ...headers } }, (response) => {
        this.status = response.statusCode ?? 0;
        this.headers = response.headers;
        const decoder = new StringDecoder('utf8');
        const parser = new EventStreamParser((event) => this.events.push(event));
        const isStream = this.status === 200;
        response.on('data', (chunk: Buffer) => {
          const text = decoder.write(chunk);
          this.raw += text;
          if (isStream) parser.feed(text);
          this.notify();
        });
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

  private notify(): void {
    for (const waiter of [...this.waiters]) waiter();
  }

  private finish(): void {
    if (this.ended) return;
    this.ended = true;
    this.notify();
  }
}
