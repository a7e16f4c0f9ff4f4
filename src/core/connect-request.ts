import type { IncomingMessage } from 'node:http';

/** What a connection asks for in its URL: the built-in SSE route and WebSocket endpoint. */
export interface ConnectRequest {
  /** The `topic` parameters, each once, in order (`whenNone` when there are none). */
  readonly topics: string[];
  /** The `Last-Event-ID` header, else the `lastEventId` parameter. */
  readonly lastEventId: string | undefined;
  /** Every query parameter, for what a transport adds (SSE: `format`). */
  readonly params: URLSearchParams;
}

/** Parses a connection's URL and headers (the built-in SSE route and WebSocket endpoint). */
export function parseConnectRequest(request: IncomingMessage, whenNone: readonly string[] = []): ConnectRequest {
  const url = new URL(request.url ?? '/', 'http://localhost');
  const header = request.headers['last-event-id'];
  const lastEventId = (Array.isArray(header) ? header[0] : header) ?? url.searchParams.get('lastEventId') ?? undefined;
  return { topics: connectTopics(url.searchParams.getAll('topic'), whenNone), lastEventId, params: url.searchParams };
}

/** A connection's topic list: each topic once, in order, or `whenNone` for an empty one (`stream()` too). */
export function connectTopics(topics: string | readonly string[] | undefined, whenNone: readonly string[] = []): string[] {
  const list = topics === undefined ? [] : typeof topics === 'string' ? [topics] : topics;
  return list.length === 0 ? [...whenNone] : [...new Set(list)];
}

/**
 * The `rewind` parameter (docs/protocol.md, "Rewind"): a whole number of 0 or more, 0 when absent
 * or empty; `undefined` when it is anything else (answered 400 on SSE). The session caps it.
 */
export function parseRewind(params: URLSearchParams): number | undefined {
  const values = params.getAll('rewind');
  if (values.length === 0 || (values.length === 1 && values[0] === '')) return 0;
  if (values.length > 1 || !/^\d{1,15}$/.test(values[0]!)) return undefined;
  return Number(values[0]);
}
