/**
 * A `text/event-stream` parser that follows the WHATWG HTML standard ("Interpreting an event
 * stream"): lines end with CRLF, LF or CR; a line starting with `:` is a comment; `field: value`
 * with one leading space stripped; `event`, `data`, `id` (ignored if it contains NUL) and `retry`
 * (ASCII digits only); a blank line dispatches; an event whose data buffer is empty is not
 * dispatched, but its `id` still counts; an incomplete event at the end of the stream is discarded.
 * Node-free: the client SDK's SSE transport and the tests share this one copy.
 */
export interface StreamEvent {
  /** The `id:` field of this frame, when it had one (EventSource's lastEventId moves to it). */
  readonly id: string | undefined;
  /** The event type (`message` when the frame had no `event:` field). */
  readonly event: string;
  /** The data (lines joined with LF), or `undefined` for a frame that dispatches no event. */
  readonly data: string | undefined;
}

/**
 * The parser as one function that takes decoded text (decode UTF-8 with a streaming decoder
 * first). A closure rather than a class: the SSE transport of the core build uses it, and its
 * state as local variables minifies to a fraction of `this.#field`s.
 * `retry` hears each valid `retry:` field (milliseconds), as EventSource's reconnection time.
 */
export function eventStreamParser(emit: (event: StreamEvent) => void, retry?: (ms: number) => void): (text: string) => void {
  /** The unfinished line; `undefined` before the first character (a BOM there is dropped). */
  let buffer: string | undefined;
  /** The last chunk ended with CR: a LF starting the next one belongs to it. */
  let skipLf = false;
  let data: string[] = [];
  let event = '';
  let id: string | undefined;
  return (text) => {
    if (text === '') return;
    if (buffer === undefined) text = text.replace(/^\ufeff/, '');
    if (skipLf && text[0] === '\n') text = text.slice(1);
    skipLf = text.endsWith('\r');
    const lines = text.split(/\r\n?|\n/);
    lines[0] = (buffer ?? '') + lines[0];
    buffer = lines.pop();
    for (const line of lines) {
      if (line === '') {
        emit({ id, event: event || 'message', data: data.length === 0 ? undefined : data.join('\n') });
        id = undefined;
        event = '';
        data = [];
        continue;
      }
      // `field: value` (one leading space dropped), or a whole line naming a field; a comment names ''.
      const [, field, value] = /^([^:]*):? ?([^]*)$/.exec(line)! as unknown as [string, string, string];
      if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
      else if (field === 'id') {
        if (!value.includes('\0')) id = value;
      } else if (field === 'retry' && /^\d+$/.test(value)) retry?.(Number(value));
    }
  };
}

/** The same parser as a class, for callers that hold one object per stream (the tests, `pushlet-nestjs/client`). */
export class EventStreamParser {
  /** Feeds decoded text (decode UTF-8 with a streaming decoder before calling). */
  readonly feed: (text: string) => void;

  constructor(emit: (event: StreamEvent) => void, retry?: (ms: number) => void) {
    this.feed = eventStreamParser(emit, retry);
  }
}
