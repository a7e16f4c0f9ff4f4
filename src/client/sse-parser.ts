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
  private buffer = '';
  private skipLf = false;
  private started = false;
  private data: string[] = [];
  private event = '';
  private id: string | undefined;

  /** `retry` hears each valid `retry:` field (milliseconds), as EventSource's reconnection time. */
  constructor(
    private readonly emit: (event: StreamEvent) => void,
    private readonly retry?: (ms: number) => void,
  ) {}

  /** Feeds decoded text (decode UTF-8 with a streaming decoder before calling). */
  feed(text: string): void {
    if (!this.started && text.length > 0) {
      this.started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    let start = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (this.skipLf) {
        this.skipLf = false;
        if (c === 0x0a) {
          start = i + 1;
          continue;
        }
      }
      if (c === 0x0a || c === 0x0d) {
        const line = this.buffer + text.slice(start, i);
        this.buffer = '';
        start = i + 1;
        if (c === 0x0d) this.skipLf = true;
        this.line(line);
      }
    }
    this.buffer += text.slice(start);
  }

  private line(line: string): void {
    if (line === '') return this.dispatch();
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'event':
        this.event = value;
        break;
      case 'data':
        this.data.push(value);
        break;
      case 'id':
        if (!value.includes('\0')) this.id = value;
        break;
      case 'retry':
        if (/^\d+$/.test(value)) this.retry?.(Number(value));
        break;
      default:
        break;
    }
  }

  private dispatch(): void {
    const { id, event, data } = this;
    this.id = undefined;
    this.event = '';
    this.data = [];
    this.emit({ id, event: event || 'message', data: data.length === 0 ? undefined : data.join('\n') });
  }
}
