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

export class EventStreamParser {
  readonly #emit: (event: StreamEvent) => void;
  readonly #retry: ((ms: number) => void) | undefined;
  /** The unfinished line; `undefined` before the first character (a BOM there is dropped). */
  #buffer: string | undefined;
  /** The last chunk ended with CR: a LF starting the next one belongs to it. */
  #skipLf = false;
  #data: string[] = [];
  #event = '';
  #id: string | undefined;

  /** `retry` hears each valid `retry:` field (milliseconds), as EventSource's reconnection time. */
  constructor(emit: (event: StreamEvent) => void, retry?: (ms: number) => void) {
    this.#emit = emit;
    this.#retry = retry;
  }

  /** Feeds decoded text (decode UTF-8 with a streaming decoder before calling). */
  feed(text: string): void {
    if (text === '') return;
    if (this.#buffer === undefined) text = text.replace(/^\ufeff/, '');
    if (this.#skipLf && text[0] === '\n') text = text.slice(1);
    this.#skipLf = text.endsWith('\r');
    const lines = text.split(/\r\n?|\n/);
    lines[0] = (this.#buffer ?? '') + lines[0];
    this.#buffer = lines.pop();
    for (const line of lines) this.#line(line);
  }

  #line(line: string): void {
    if (line === '') return this.#dispatch();
    // `field: value` (one leading space dropped), or a whole line naming a field; a comment names ''.
    const [, field, value] = /^([^:]*):? ?([^]*)$/.exec(line)!;
    if (field === 'event') this.#event = value!;
    else if (field === 'data') this.#data.push(value!);
    else if (field === 'id') {
      if (!value!.includes('\0')) this.#id = value;
    } else if (field === 'retry' && /^\d+$/.test(value!)) this.#retry?.(Number(value));
  }

  #dispatch(): void {
    const id = this.#id;
    const event = this.#event || 'message';
    const data = this.#data;
    this.#id = undefined;
    this.#event = '';
    this.#data = [];
    this.#emit({ id, event, data: data.length === 0 ? undefined : data.join('\n') });
  }
}
