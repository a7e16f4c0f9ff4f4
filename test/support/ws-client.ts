import type { IncomingMessage } from 'node:http';
import { WebSocket, type ClientOptions, type RawData } from 'ws';
import { within } from './wait.js';

/** One server-to-client frame: its type, its bytes, and its JSON (undefined if it was not JSON). */
export interface WsFrame {
  readonly binary: boolean;
  readonly text: string;
  readonly json: Record<string, unknown> | undefined;
}

export interface WsClose {
  readonly code: number;
  readonly reason: string;
}

/**
 * A real `ws` client that keeps every frame it receives, parsed, with bounded waits on them.
 * Close it in `afterEach` (close() is safe to call twice).
 */
export class WsClient {
  readonly frames: WsFrame[] = [];
  pings = 0;
  closed: WsClose | undefined;
  private waiters: Array<() => void> = [];

  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data: RawData, binary: boolean) => this.receive(data, binary));
    socket.on('ping', () => {
      this.pings += 1;
      this.notify();
    });
    socket.on('close', (code: number, reason: Buffer) => {
      this.closed = { code, reason: reason.toString() };
      this.notify();
    });
    // Errors (a refused or cut connection) are followed by 'close'; the tests look at that.
    socket.on('error', () => undefined);
  }

  /** Opens a connection and waits until it is open. */
  static async open(url: string, options: ClientOptions = {}, ms = 5_000): Promise<WsClient> {
    const socket = new WebSocket(url, options);
    const client = new WsClient(socket);
    try {
      await within(
        new Promise<void>((resolve, reject) => {
          socket.once('open', () => resolve());
          socket.once('unexpected-response', (_request, response: IncomingMessage) => reject(new Error(`HTTP ${response.statusCode}`)));
          socket.once('error', reject);
        }),
        ms,
        `WebSocket open of ${url}`,
      );
    } catch (error) {
      socket.terminate();
      throw error;
    }
    return client;
  }

  /** Attempts an upgrade that the server should refuse; resolves to the HTTP status it answered. */
  static refusal(url: string, options: ClientOptions = {}, ms = 5_000): Promise<number> {
    const socket = new WebSocket(url, options);
    socket.on('error', () => undefined);
    return within(
      new Promise<number>((resolve, reject) => {
        socket.once('unexpected-response', (request, response: IncomingMessage) => {
          resolve(response.statusCode ?? 0);
          response.resume();
          request.destroy();
        });
        socket.once('open', () => {
          socket.terminate();
          reject(new Error(`the upgrade of ${url} was accepted`));
        });
      }),
      ms,
      `refusal of ${url}`,
    );
  }

  /** Sends a command as JSON, in a text frame unless `binary`. Strings and buffers go as they are. */
  send(command: unknown, binary = false): void {
    const payload = typeof command === 'string' || Buffer.isBuffer(command) ? command : JSON.stringify(command);
    this.socket.send(payload, { binary });
  }

  /** Sends a command carrying `ref` and waits for the frame that echoes it. */
  async call(command: Record<string, unknown> & { ref: string | number }, ms = 5_000): Promise<Record<string, unknown>> {
    this.send(command);
    const frame = await this.waitFor((json) => json.ref === command.ref, ms, `reply to ref ${String(command.ref)}`);
    return frame;
  }

  /** JSON of every frame, in arrival order. */
  get received(): Array<Record<string, unknown>> {
    return this.frames.flatMap((frame) => (frame.json ? [frame.json] : []));
  }

  /** Messages only (no `pushlet:*` notices). */
  get messages(): Array<Record<string, unknown>> {
    return this.received.filter((json) => !String(json.event).startsWith('pushlet:'));
  }

  /** Frames whose `event` is `event`. */
  events(event: string): Array<Record<string, unknown>> {
    return this.received.filter((json) => json.event === event);
  }

  /** Waits for the first frame that satisfies `predicate`. */
  async waitFor(predicate: (json: Record<string, unknown>) => boolean, ms = 5_000, what = 'frame'): Promise<Record<string, unknown>> {
    await this.waitUntil(() => this.received.some(predicate), ms, what);
    return this.received.find(predicate)!;
  }

  /** Waits until `count` frames with `event` have arrived; returns them. */
  async waitForEvents(event: string, count = 1, ms = 5_000): Promise<Array<Record<string, unknown>>> {
    await this.waitUntil(() => this.events(event).length >= count, ms, `${count} "${event}" frames (have ${this.events(event).length})`);
    return this.events(event);
  }

  /** Waits until `count` messages have arrived; returns them. */
  async waitForMessages(count: number, ms = 5_000): Promise<Array<Record<string, unknown>>> {
    await this.waitUntil(() => this.messages.length >= count, ms, `${count} messages`);
    return this.messages;
  }

  async waitForPings(count: number, ms = 5_000): Promise<void> {
    await this.waitUntil(() => this.pings >= count, ms, `${count} pings`, false);
  }

  async waitForClose(ms = 5_000): Promise<WsClose> {
    await this.waitUntil(() => this.closed !== undefined, ms, 'close', false);
    return this.closed!;
  }

  /** Ends the connection at once (test clean-up). */
  close(): void {
    if (this.socket.readyState !== WebSocket.CLOSED) this.socket.terminate();
  }

  private receive(data: RawData, binary: boolean): void {
    const text = Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.from(data as ArrayBuffer).toString('utf8');
    let json: Record<string, unknown> | undefined;
    try {
      json = JSON.parse(text) as Record<string, unknown>;
    } catch {
      json = undefined;
    }
    this.frames.push({ binary, text, json });
    this.notify();
  }

  private waitUntil(check: () => boolean, ms: number, what: string, failOnClose = true): Promise<void> {
    if (check()) return Promise.resolve();
    return within(
      new Promise<void>((resolve) => {
        const waiter = () => {
          if (check() || (failOnClose && this.closed)) {
            this.waiters = this.waiters.filter((w) => w !== waiter);
            resolve();
          }
        };
        this.waiters.push(waiter);
      }),
      ms,
      what,
    ).then(() => {
      if (!check()) throw new Error(`connection closed (${this.closed?.code}) while waiting for ${what}`);
    });
  }

  private notify(): void {
    for (const waiter of [...this.waiters]) waiter();
  }
}
