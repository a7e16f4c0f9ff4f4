import { All, Body, Controller, Header, HttpCode, HttpException, HttpStatus, Query } from '@nestjs/common';
import { PushletService } from '../src/index.js';

/** Largest message the sample publishes, in bytes (the WebSocket endpoint's default `maxPayload`). */
export const MAX_MESSAGE_BYTES = 64 * 1024;

/** The fields of `/send` and `/broadcast`, from the query or a JSON or form body. */
interface PublishFields {
  topic?: unknown;
  event?: unknown;
  message?: unknown;
}

/**
 * A field from the body when it has it, else from the query. Values are passed on as they are:
 * the module rejects a topic or event that is not a valid string (400), and a message may be any
 * JSON value (published as its JSON text).
 */
function fields(query: PublishFields, body: unknown): PublishFields {
  const fromBody: PublishFields = body !== null && typeof body === 'object' && !Array.isArray(body) ? (body as PublishFields) : {};
  const pick = (name: keyof PublishFields) => (fromBody[name] !== undefined ? fromBody[name] : query[name]);
  return { topic: pick('topic'), event: pick('event'), message: pick('message') };
}

/** An empty or missing field means its default. */
function orDefault(value: unknown, fallback: string): unknown {
  return value === undefined || value === null || value === '' ? fallback : value;
}

function checkSize(message: unknown): void {
  const text = typeof message === 'string' ? message : (JSON.stringify(message) ?? '');
  const bytes = Buffer.byteLength(text);
  if (bytes > MAX_MESSAGE_BYTES) {
    const statusCode = HttpStatus.PAYLOAD_TOO_LARGE;
    throw new HttpException({ statusCode, message: `message must be at most ${MAX_MESSAGE_BYTES} bytes, got ${bytes}` }, statusCode);
  }
}

/**
 * The sample's publishing routes (docs/protocol.md, "The sample app"): `GET` or `POST`, with the fields
 * `topic`, `event` and `message` in the query or (POST) a JSON or form body. A bad topic or event
 * is answered 400 and a message over {@link MAX_MESSAGE_BYTES} 413, both as `{ statusCode, message }`.
 */
@Controller()
export class SendController {
  constructor(private readonly pushlet: PushletService) {}

  @All('send')
  @HttpCode(200)
  @Header('Content-Type', 'text/plain; charset=utf-8')
  async send(@Query() query: PublishFields, @Body() body: unknown): Promise<string> {
    const { topic, event, message } = fields(query, body);
    const data = message ?? '';
    checkSize(data);
    await this.pushlet.publish(orDefault(topic, 'default') as string, orDefault(event, 'message') as string, data);
    return 'Message sent';
  }

  @All('broadcast')
  @HttpCode(200)
  @Header('Content-Type', 'text/plain; charset=utf-8')
  async broadcast(@Query() query: PublishFields, @Body() body: unknown): Promise<string> {
    const { event, message } = fields(query, body);
    const data = message ?? '';
    checkSize(data);
    await this.pushlet.publishToAll(orDefault(event, 'message') as string, data);
    return 'Message sent';
  }
}
