import type { PushletClientOptions } from './client-types.js';
import { eventStreamParser } from './sse-parser.js';
import { DEAD_LINK_FACTOR, type ClientFrame, type ConnectRequest, type Transport, type TransportEnd, type TransportHandlers } from './transport.js';

/**
 * Opens one Server-Sent Events stream read with `fetch` (so that it can send `Authorization` and
 * `Last-Event-ID`, which `EventSource` cannot): topics on the URL, the body decoded as UTF-8 and
 * parsed the WHATWG way. An HTTP error before the stream is reported with its status and message.
 * A stream silent (not even a heartbeat) for `sseIdleTimeoutMs` counts as dead.
 */
export function openEventStream(request: ConnectRequest, options: PushletClientOptions, handlers: TransportHandlers): Transport {
  // Set: that (0: never); else 2.5 times the heartbeat the server announces, off until it does.
  let idleTimeoutMs = options.sseIdleTimeoutMs ?? 0;
  const abort = new AbortController();
  // Aborted: the stream is finished (ended, or closed by the client).
  const { signal } = abort;
  let opened = false;
  let retryMs: number | undefined;
  let idleTimer: ReturnType<typeof setTimeout> | undefined;
  // Message frames as JSON with their topic and timestamp (docs/protocol.md, SSE `format=json`).
  request.url.searchParams.set('format', 'json');
  const headers: Record<string, string> = { Accept: 'text/event-stream', 'Cache-Control': 'no-cache' };
  if (request.lastEventId !== undefined) headers['Last-Event-ID'] = request.lastEventId;
  if (request.token !== undefined) headers.Authorization = `Bearer ${request.token}`;

  const close = (): void => {
    clearTimeout(idleTimer);
    abort.abort();
  };
  const finish = (end: TransportEnd): void => {
    if (signal.aborted) return;
    close();
    handlers.ended(end);
  };
  /** Restarts the silence timer: every chunk (heartbeat comments included) proves the stream alive. */
  const watchIdle = (): void => {
    if (idleTimeoutMs <= 0) return;
    clearTimeout(idleTimer);
    idleTimer = setTimeout(() => finish({ opened, reason: `no data within ${idleTimeoutMs} ms` }), idleTimeoutMs);
  };
  const run = async (): Promise<TransportEnd> => {
    const response = await (options.fetch ?? fetch)(request.url, { headers, signal });
    if (response.status !== 200 || !response.body) return refused(response);
    opened = true;
    const feed = eventStreamParser(
      ({ id, event, data }) => {
        if (data !== undefined && !signal.aborted) handlers.frame(toFrame(id, event, data));
      },
      (ms) => (retryMs = ms),
    );
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    while (!signal.aborted) {
      watchIdle();
      const { done, value } = await reader.read();
      if (done) break;
      feed(decoder.decode(value, { stream: true }));
    }
    feed(decoder.decode());
    return { opened, reason: '', retryMs };
  };

  // A failed request, or a read that failed after it: `opened` tells which.
  run().then(finish, (error: unknown) => finish({ opened, reason: describe(error) }));
  return {
    kind: 'sse',
    topics: new Set(request.topics),
    send: () => false,
    heartbeat(ms) {
      if (options.sseIdleTimeoutMs !== undefined || signal.aborted) return;
      idleTimeoutMs = ms * DEAD_LINK_FACTOR;
      watchIdle();
    },
    close,
  };
}

/**
 * A message's `data:` is the message as JSON (`format=json`): its topic, data and timestamp
 * (presence joins and leaves too); notices, whose data is anything else, as they are.
 */
function toFrame(id: string | undefined, event: string, data: string): ClientFrame {
  try {
    const message = JSON.parse(data) as Partial<Record<'topic' | 'data' | 'timestamp', unknown>> | null;
    if (typeof message?.topic === 'string' && typeof message.data === 'string') {
      return { id, event, data: message.data, topic: message.topic, timestamp: typeof message.timestamp === 'string' ? message.timestamp : undefined };
    }
  } catch {
    // Not JSON: a notice, or a server without `format=json` sent the data alone.
  }
  return { id, event, data };
}

async function refused(response: Response): Promise<TransportEnd> {
  let reason = response.statusText;
  try {
    const body = (await response.json()) as { message?: unknown } | null;
    if (typeof body?.message === 'string') reason = body.message;
  } catch {
    // Not JSON: the status text says enough.
  }
  const retryAfter = Number(response.headers.get('retry-after'));
  return { opened: false, status: response.status, reason, retryMs: retryAfter > 0 ? retryAfter * 1_000 : undefined };
}

/** An error's message, and its cause's (`fetch failed: connect ECONNREFUSED …`). */
function describe(error: unknown): string {
  const cause = (error as { cause?: unknown } | undefined)?.cause;
  return error instanceof Error ? error.message + (cause instanceof Error ? `: ${cause.message}` : '') : String(error);
}
