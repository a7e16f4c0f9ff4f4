import { connect, type Socket } from 'node:net';
import { nowUs } from '../lib/proc.js';

/** How a load client speaks to a server: a WebSocket, Socket.IO (Engine.IO 4 over WebSocket) or SSE. */
export type Protocol = 'ws' | 'sio' | 'sse';

/** What connections report to their load-client process. */
export interface Sink {
  /** A measured message (`@@M`) with its sequence number and publish time. */
  measured(connection: Connection, seq: number, publishedUs: number, receivedUs: number): void;
  /** A connection that was open closed without being asked to. */
  unexpectedClose(connection: Connection, reason: string): void;
  heartbeat(): void;
  malformed(connection: Connection, why: string): void;
}

const MARK = Buffer.from('@@');
const HEADER_END = Buffer.from('\r\n\r\n');
const SSE_FRAME_END = Buffer.from('\n\n');
const MAX_HEAD = 16 * 1024;
/** Client frames must be masked; an all-zero key leaves the payload as is, which is allowed. */
const ZERO_MASK = Buffer.alloc(4);

/**
 * One client connection over a raw TCP socket, with just enough of each protocol to subscribe,
 * answer heartbeats and find measured messages. Far cheaper per message than full client
 * libraries, so that the servers, not the load clients, run out of CPU first. Messages are not
 * fully parsed: the load client finds the `@@M<seq>.<µs>.` payload marker in the raw bytes; the
 * first message of each connection is parsed in full and checked against the wire contract.
 */
export class Connection {
  socket: Socket | undefined;
  /** Highest sequence number received, received count, duplicates, out-of-order arrivals. */
  last = -1;
  received = 0;
  duplicates = 0;
  outOfOrder = 0;
  warm = false;
  closing = false;
  closed = false;
  private seen: Ledger | undefined;
  private validated = false;
  private headDone = false;
  private pending: Buffer | undefined;
  private fragments: Buffer[] | undefined;
  private fragmentOpcode = 0;
  private chunked = false;
  private chunkState: 'size' | 'data' | 'crlf' = 'size';
  private chunkLeft = 0;
  private chunkSizeLine = '';
  private ssePending: Buffer | undefined;
  private resolveOpen: (() => void) | undefined;
  private rejectOpen: ((error: Error) => void) | undefined;
  private lastError = '';

  constructor(
    readonly protocol: Protocol,
    readonly topic: string,
    private readonly sink: Sink,
  ) {}

  /** Connects and resolves once established: 101 (WebSocket), Socket.IO CONNECT, or 200 (SSE). */
  open(host: string, port: number, path: string, localAddress: string | undefined, timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      const fail = (error: Error) => {
        clearTimeout(timer);
        this.resolveOpen = undefined;
        this.rejectOpen = undefined;
        this.closing = true;
        this.socket?.destroy();
        reject(error);
      };
      this.resolveOpen = () => {
        clearTimeout(timer);
        this.resolveOpen = undefined;
        this.rejectOpen = undefined;
        resolve();
      };
      this.rejectOpen = fail;
      const socket = connect({ host, port, localAddress, noDelay: true });
      this.socket = socket;
      socket.on('connect', () => socket.write(this.request(host, port, path)));
      socket.on('data', (chunk: Buffer) => this.onData(chunk));
      socket.on('error', (error: NodeJS.ErrnoException) => {
        this.lastError = error.code ?? error.message;
        this.rejectOpen?.(error);
      });
      socket.on('close', () => {
        this.closed = true;
        this.rejectOpen?.(new Error(`closed during handshake (${this.lastError || 'no error'})`));
        if (!this.closing) this.sink.unexpectedClose(this, this.lastError || 'closed by server');
      });
    });
  }

  /** Closes as a browser would: a WebSocket close frame, or dropping the SSE request. Resolves when closed. */
  close(timeoutMs = 5_000): Promise<void> {
    const socket = this.socket;
    if (!socket || this.closed) return Promise.resolve();
    this.closing = true;
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => socket.destroy(), timeoutMs);
      socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      if (this.protocol === 'sse' || !this.headDone) socket.destroy();
      else this.sendFrame(0x8, Buffer.from([0x03, 0xe8]));
    });
  }

  /** The HTTP request that opens the connection (a subclass may add headers, e.g. `Last-Event-ID`). */
  protected request(host: string, port: number, path: string): string {
    if (this.protocol === 'sse') {
      return `GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n`;
    }
    return (
      `GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`
    );
  }

  private onData(chunk: Buffer): void {
    if (!this.headDone) {
      const buffer = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
      this.pending = undefined;
      const end = buffer.indexOf(HEADER_END);
      if (end < 0) {
        if (buffer.length > MAX_HEAD) this.rejectOpen?.(new Error('response head too large'));
        else this.pending = buffer;
        return;
      }
      this.headDone = true;
      if (!this.onHead(buffer.toString('latin1', 0, end))) return;
      chunk = buffer.subarray(end + HEADER_END.length);
      if (chunk.length === 0) return;
    }
    const receivedUs = nowUs();
    if (this.protocol === 'sse') this.onSseBody(chunk, receivedUs);
    else this.onWsBytes(chunk, receivedUs);
  }

  private onHead(head: string): boolean {
    const status = Number(head.slice(9, 12));
    const expected = this.protocol === 'sse' ? 200 : 101;
    if (status !== expected) {
      this.rejectOpen?.(new Error(`HTTP ${status} instead of ${expected}: ${head.split('\r\n')[0]}`));
      return false;
    }
    this.chunked = /\r\ntransfer-encoding:\s*chunked/i.test(head);
    // Socket.IO is established by its CONNECT packet, not by the upgrade.
    if (this.protocol !== 'sio') this.resolveOpen?.();
    return true;
  }

  // ---- WebSocket framing (server frames are never masked) ----

  private onWsBytes(chunk: Buffer, receivedUs: number): void {
    let buffer = chunk;
    if (this.pending) {
      buffer = Buffer.concat([this.pending, chunk]);
      this.pending = undefined;
    }
    let pos = 0;
    const length = buffer.length;
    while (length - pos >= 2) {
      const b0 = buffer[pos]!;
      const b1 = buffer[pos + 1]!;
      let size = b1 & 0x7f;
      let header = 2;
      if (size === 126) {
        if (length - pos < 4) break;
        size = buffer.readUInt16BE(pos + 2);
        header = 4;
      } else if (size === 127) {
        if (length - pos < 10) break;
        size = buffer.readUInt32BE(pos + 2) * 2 ** 32 + buffer.readUInt32BE(pos + 6);
        header = 10;
      }
      if (b1 & 0x80) header += 4;
      if (length - pos < header + size) break;
      const start = pos + header;
      pos = start + size;
      this.onWsFrame(b0 & 0x0f, (b0 & 0x80) !== 0, buffer, start, pos, receivedUs);
    }
    if (pos < length) this.pending = Buffer.from(buffer.subarray(pos));
  }

  private onWsFrame(opcode: number, fin: boolean, buffer: Buffer, start: number, end: number, receivedUs: number): void {
    if (opcode === 0x1 || opcode === 0x2) {
      if (fin) return this.onWsMessage(buffer, start, end, receivedUs);
      this.fragmentOpcode = opcode;
      this.fragments = [Buffer.from(buffer.subarray(start, end))];
      return;
    }
    if (opcode === 0x0 && this.fragments) {
      this.fragments.push(Buffer.from(buffer.subarray(start, end)));
      if (!fin) return;
      const whole = Buffer.concat(this.fragments);
      this.fragments = undefined;
      if (this.fragmentOpcode) this.onWsMessage(whole, 0, whole.length, receivedUs);
      return;
    }
    if (opcode === 0x9) {
      this.sink.heartbeat();
      this.sendFrame(0xa, buffer.subarray(start, end));
      return;
    }
    if (opcode === 0x8) {
      const code = end - start >= 2 ? buffer.readUInt16BE(start) : 1005;
      if (!this.closing) {
        // The server closed first: answer it; the socket's close reports it as unexpected.
        this.lastError = `close frame ${code}`;
        this.sendFrame(0x8, buffer.subarray(start, Math.min(end, start + 2)));
      }
      this.socket?.end();
    }
  }

  private onWsMessage(buffer: Buffer, start: number, end: number, receivedUs: number): void {
    if (this.protocol === 'ws') return this.onPayload(buffer, start, end, receivedUs);
    // Engine.IO packet types: 0 open, 2 ping, 4 message (Socket.IO packet inside).
    const type = buffer[start];
    if (type === 0x34 /* 4 */) {
      const sioType = buffer[start + 1];
      if (sioType === 0x32 /* 2 EVENT */) return this.onPayload(buffer, start, end, receivedUs);
      if (sioType === 0x30 /* 0 CONNECT */) return this.resolveOpen?.();
      if (sioType === 0x34 /* 4 CONNECT_ERROR */) this.rejectOpen?.(new Error(`Socket.IO connect error ${buffer.toString('utf8', start, end)}`));
      return;
    }
    if (type === 0x32 /* 2 ping */) {
      this.sink.heartbeat();
      this.sendFrame(0x1, Buffer.from('3'));
      return;
    }
    if (type === 0x30 /* 0 open */) this.sendFrame(0x1, Buffer.from('40'));
  }

  private sendFrame(opcode: number, payload: Buffer): void {
    const socket = this.socket;
    if (!socket || socket.destroyed) return;
    // Control frames and our tiny commands stay under 126 bytes.
    const header = Buffer.from([0x80 | opcode, 0x80 | payload.length]);
    socket.write(Buffer.concat([header, ZERO_MASK, payload]));
  }

  // ---- SSE over HTTP/1.1 chunked transfer encoding ----

  private onSseBody(chunk: Buffer, receivedUs: number): void {
    if (!this.chunked) return this.onSseBytes(chunk, 0, chunk.length, receivedUs);
    let pos = 0;
    while (pos < chunk.length) {
      if (this.chunkState === 'size') {
        const newline = chunk.indexOf(0x0a, pos);
        if (newline < 0) {
          this.chunkSizeLine += chunk.toString('latin1', pos);
          return;
        }
        this.chunkSizeLine += chunk.toString('latin1', pos, newline);
        pos = newline + 1;
        const size = parseInt(this.chunkSizeLine, 16);
        this.chunkSizeLine = '';
        if (!(size > 0)) {
          this.lastError = 'stream ended';
          this.streamEnded();
          return;
        }
        this.chunkLeft = size;
        this.chunkState = 'data';
      } else if (this.chunkState === 'data') {
        const take = Math.min(this.chunkLeft, chunk.length - pos);
        this.onSseBytes(chunk, pos, pos + take, receivedUs);
        pos += take;
        this.chunkLeft -= take;
        if (this.chunkLeft === 0) {
          this.chunkState = 'crlf';
          this.chunkLeft = 2;
        }
      } else {
        const take = Math.min(this.chunkLeft, chunk.length - pos);
        pos += take;
        this.chunkLeft -= take;
        if (this.chunkLeft === 0) this.chunkState = 'size';
      }
    }
  }

  private onSseBytes(chunk: Buffer, start: number, end: number, receivedUs: number): void {
    let buffer = chunk;
    if (this.ssePending) {
      buffer = Buffer.concat([this.ssePending, chunk.subarray(start, end)]);
      this.ssePending = undefined;
      start = 0;
      end = buffer.length;
    }
    let pos = start;
    while (pos < end) {
      const frameEnd = buffer.indexOf(SSE_FRAME_END, pos);
      if (frameEnd < 0 || frameEnd + 2 > end) break;
      if (buffer[pos] === 0x3a /* ':' comment */) this.sink.heartbeat();
      else this.onPayload(buffer, pos, frameEnd + 1, receivedUs);
      pos = frameEnd + 2;
    }
    if (pos < end) this.ssePending = Buffer.from(buffer.subarray(pos, end));
  }

  /** The server ended the SSE response (the socket may stay open for keep-alive). */
  protected streamEnded(): void {}

  // ---- the measured payload, whatever the framing ----

  /** One whole message: a WebSocket message's payload or an SSE frame (without its final blank line). */
  protected onPayload(buffer: Buffer, start: number, end: number, receivedUs: number): void {
    const mark = buffer.indexOf(MARK, start);
    if (mark < 0 || mark + 4 >= end) return; // a control frame (pushlet:connected, ...)
    if (buffer[mark + 2] === 0x57 /* W */) {
      this.warm = true;
      return;
    }
    const { seq, publishedUs } = readMark(buffer, mark + 3, end);
    if (!this.validated) {
      this.validated = true;
      const why = this.checkContract(buffer.toString('utf8', start, end));
      if (why) this.sink.malformed(this, why);
    }
    this.track(seq);
    this.sink.measured(this, seq, publishedUs, receivedUs);
  }

  private track(seq: number): void {
    if (!(this.seen ??= new Ledger()).add(seq)) this.duplicates += 1;
    else {
      this.received += 1;
      if (seq < this.last) this.outOfOrder += 1;
      else this.last = seq;
    }
  }

  /** Checks one whole message against docs/protocol.md; an empty string when it conforms. */
  private checkContract(text: string): string {
    if (this.protocol === 'sse') {
      const lines = text.split('\n');
      if (!lines.some((l) => l.startsWith('id: '))) return `SSE frame without id: ${text.slice(0, 120)}`;
      if (!lines.includes('event: bench')) return `SSE frame without "event: bench": ${text.slice(0, 120)}`;
      if (!lines.some((l) => l.startsWith('data: @@M'))) return `SSE frame without data: ${text.slice(0, 120)}`;
      return '';
    }
    let message: unknown;
    try {
      message = this.protocol === 'sio' ? (JSON.parse(text.slice(2)) as unknown[])[1] : JSON.parse(text);
    } catch {
      return `not JSON: ${text.slice(0, 120)}`;
    }
    const m = message as Record<string, unknown>;
    for (const field of ['id', 'topic', 'event', 'data', 'timestamp']) {
      if (typeof m?.[field] !== 'string') return `field ${field} missing: ${text.slice(0, 120)}`;
    }
    if (m.topic !== this.topic) return `topic ${String(m.topic)} instead of ${this.topic}`;
    if (m.event !== 'bench') return `event ${String(m.event)} instead of bench`;
    return '';
  }
}

const DOT = 0x2e;
const scratch = { seq: 0, publishedUs: 0 };

/** `<seq>.<µs>.` from `pos` (just after `@@M`); the answer is reused by the next call. */
export function readMark(buffer: Buffer, pos: number, end: number): { seq: number; publishedUs: number } {
  let seq = 0;
  for (let c = buffer[pos]!; c !== DOT && pos < end; c = buffer[++pos]!) seq = seq * 10 + (c - 48);
  let publishedUs = 0;
  for (let c = buffer[++pos]!; c !== DOT && pos < end; c = buffer[++pos]!) publishedUs = publishedUs * 10 + (c - 48);
  scratch.seq = seq;
  scratch.publishedUs = publishedUs;
  return scratch;
}

/** A bit per sequence number received (per connection or client): duplicates and gaps. */
export class Ledger {
  private bits = new Uint8Array(64);

  /** Marks `seq`; false when it was marked already. */
  add(seq: number): boolean {
    const byte = seq >> 3;
    const bit = 1 << (seq & 7);
    if (byte >= this.bits.length) {
      const grown = new Uint8Array(2 ** Math.ceil(Math.log2(byte + 1)));
      grown.set(this.bits);
      this.bits = grown;
    }
    if (this.bits[byte]! & bit) return false;
    this.bits[byte]! |= bit;
    return true;
  }

  has(seq: number): boolean {
    return seq >> 3 < this.bits.length && (this.bits[seq >> 3]! & (1 << (seq & 7))) !== 0;
  }
}

/** Runs `open(i)` for i in [0, count) with `concurrency` in flight; counts what failed. */
export async function openInParallel(count: number, concurrency: number, open: (index: number) => Promise<unknown>) {
  const started = Date.now();
  let next = 0;
  let opened = 0;
  let failed = 0;
  const errors: string[] = [];
  const worker = async () => {
    while (next < count) {
      try {
        await open(next++);
        opened += 1;
      } catch (error) {
        failed += 1;
        if (errors.length < 5) errors.push(error instanceof Error ? error.message : String(error));
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, count)) }, worker));
  return { opened, failed, errors, elapsedMs: Date.now() - started };
}
