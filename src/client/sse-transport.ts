import { RESERVED_PREFIX } from '../protocol/topics.js';
import { EventStreamParser, type StreamEvent } from './sse-parser.js';
import type { ClientFrame, ConnectRequest, Transport, TransportEnd, TransportHandlers } from './transport.js';

export interface SseTransportSettings {
  readonly url: URL;
  /** Defaults to the global `fetch`. */
  readonly fetch: typeof fetch;
  /** A stream silent (not even a heartbeat) this long counts as dead; 0 for never. */
  readonly idleTimeoutMs: number;
}

/**
 * One Server-Sent Events stream read with `fetch` (so that it can send `Authorization` and
 * `Last-Event-ID`, which `EventSource` cannot): topics on the URL, the body decoded as UTF-8 and
 * parsed the WHATWG way. An HTTP error before the stream is reported with its status and message.
 */
export class SseTransport implements Transport {
  readonly kind = 'sse';
  readonly topics: ReadonlySet<string>;
  private readonly abort = new AbortController();
  private finished = false;
  private retryMs: number | undefined;
  private idleTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly settings: SseTransportSettings, request: ConnectRequest, private readonly handlers: TransportHandlers) {
    this.topics = new Set(request.topics);
    const url = new URL(settings.url);
    for (const topic of request.topics) url.searchParams.append('topic', topic);
    // Message frames as JSON with their topic and timestamp (PROTOCOL.md, SSE `format=json`).
    url.searchParams.set('format', 'json');
    const headers: Record<string, string> = { Accept: 'text/event-stream', 'Cache-Control': 'no-cache' };
    if (request.lastEventId !== undefined) headers['Last-Event-ID'] = request.lastEventId;
    if (request.token !== undefined) headers.Authorization = `Bearer ${request.token}`;
    this.run(settings.fetch, url, headers).then(
      (end) => this.finish(end),
      (error: unknown) => this.finish({ kind: 'dropped', opened: false, detail: describe(error) }),
    );
  }

  send(): boolean {
    return false;
  }

  close(): void {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.idleTimer);
    this.abort.abort();
  }

  private async run(fetchFn: typeof fetch, url: URL, headers: Record<string, string>): Promise<TransportEnd> {
    const response = await fetchFn(url.toString(), { headers, signal: this.abort.signal });
    if (response.status !== 200 || !response.body) return refused(response);
    const parser = new EventStreamParser(
      (event) => {
        if (event.data !== undefined && !this.finished) this.handlers.frame(toFrame(event, event.data));
      },
      (ms) => (this.retryMs = ms),
    );
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    try {
      for (;;) {
        this.watchIdle();
        const { done, value } = await reader.read();
        if (done) break;
        parser.feed(decoder.decode(value, { stream: true }));
        if (this.finished) return { kind: 'ended' };
      }
    } catch (error) {
      return { kind: 'dropped', opened: true, detail: describe(error) };
    }
    parser.feed(decoder.decode());
    return { kind: 'ended', retryMs: this.retryMs };
  }

  /** Restarts the silence timer: every chunk (heartbeat comments included) proves the stream alive. */
  private watchIdle(): void {
    if (this.settings.idleTimeoutMs <= 0) return;
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      this.finish({ kind: 'dropped', opened: true, detail: `no data within ${this.settings.idleTimeoutMs} ms` });
    }, this.settings.idleTimeoutMs);
  }

  private finish(end: TransportEnd): void {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.idleTimer);
    this.abort.abort();
    this.handlers.ended(end);
  }
}

/** Notices as they are; a message's `data:` is the message as JSON (`format=json`). */
function toFrame(event: StreamEvent, data: string): ClientFrame {
  if (event.event.startsWith(RESERVED_PREFIX)) return { id: event.id, event: event.event, data };
  let message: Partial<Record<'topic' | 'data' | 'timestamp', unknown>> | undefined;
  try {
    message = JSON.parse(data) as typeof message;
  } catch {
    // Not JSON: a server without `format=json` sent the data alone.
  }
  if (typeof message?.topic !== 'string' || typeof message.data !== 'string') return { id: event.id, event: event.event, data };
  return { id: event.id, event: event.event, data: message.data, topic: message.topic, timestamp: typeof message.timestamp === 'string' ? message.timestamp : undefined };
}

async function refused(response: Response): Promise<TransportEnd> {
  let message = response.statusText;
  try {
    const body = (await response.json()) as { message?: unknown };
    if (typeof body?.message === 'string') message = body.message;
  } catch {
    // Not JSON: the status text says enough.
  }
  const retryAfter = Number(response.headers.get('retry-after'));
  return { kind: 'refused', status: response.status, message, retryAfterMs: retryAfter > 0 ? retryAfter * 1_000 : undefined };
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const cause = (error as { cause?: unknown }).cause;
    return cause instanceof Error ? `${error.message}: ${cause.message}` : error.message;
  }
  return String(error);
}
