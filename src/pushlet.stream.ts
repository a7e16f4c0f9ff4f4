import { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { BadRequestException, ForbiddenException, HttpException, ServiceUnavailableException, UnauthorizedException, type MessageEvent } from '@nestjs/common';
import { Observable, type Subscriber } from 'rxjs';
import { isIdentity, type Admission } from './core/admission.js';
import type { WriteQueue } from './core/bounded-writer.js';
import { connectTopics } from './core/connect-request.js';
import type { Envelope } from './core/envelope.js';
import { httpStatusOf, PushletValidationError } from './core/errors.js';
import type { Heartbeat } from './core/heartbeat.js';
import type { Session, SessionOutput } from './core/session.js';
import type { SessionOpener } from './core/session-registry.js';
import { DEFAULT_TOPIC } from './core/topic.js';
import type { PushletMessage } from './interfaces/message.interface.js';
import type { Notice, PushletIdentity } from './protocol/frames.js';
import { MESSAGES } from './pushlet.messages.js';
import { SSE_METERS } from './sse/sse-encoder.js';

/** What the Observables of `PushletService` need from the module's runtime. */
export interface StreamRuntime {
  readonly admission: Pick<Admission, 'validateTopics' | 'refused'>;
  readonly sessions: SessionOpener;
  readonly heartbeat: Pick<Heartbeat, 'onTick'>;
}

/**
 * `PushletService.stream()`: a session like the built-in SSE route's (open, `admitAll`, `start`,
 * dispose), its frames written as Nest `MessageEvent`s. Errors before the stream starts are Nest
 * HTTP exceptions ({@link toHttpException}).
 */
export function sessionStream(
  runtime: StreamRuntime,
  topics: string | readonly string[] | undefined,
  options: { lastEventId?: string; request?: IncomingMessage; identity?: PushletIdentity; rewind?: number },
): Observable<MessageEvent> {
  const list = connectTopics(topics, [DEFAULT_TOPIC]);
  const { lastEventId, request, identity, rewind = 0 } = options;
  try {
    assertRewind(rewind, 'stream(topics, { rewind })');
    runtime.admission.validateTopics(list);
  } catch (error) {
    throw toHttpException(request ? runtime.admission.refused(error) : error);
  }
  if (identity !== undefined && !isIdentity(identity)) throw new TypeError(MESSAGES.streamIdentity);
  return new Observable<MessageEvent>((subscriber) => {
    const output = new MessageEventOutput(subscriber, request);
    let session: Session;
    try {
      session = output.session = runtime.sessions.open(output, 'sse', request, identity);
    } catch (error) {
      subscriber.error(toHttpException(error));
      return undefined;
    }
    const stopHeartbeat = runtime.heartbeat.onTick((now) => subscriber.next({ comment: `heartbeat ${now.toISOString()}` } as MessageEvent));
    const start = async () => {
      await session.admitAll(list);
      if (!subscriber.closed) await session.start(list, lastEventId, [], rewind);
    };
    start().catch((error: unknown) => subscriber.error(toHttpException(error)));
    return () => {
      stopHeartbeat();
      session.dispose();
    };
  });
}

/**
 * `PushletService.subscribe()`: a session of a server-side consumer (no request: not counted, not
 * bounded), its messages as they were published.
 */
export function messageStream(
  runtime: StreamRuntime,
  topics: readonly string[],
  lastEventId: string | undefined,
  broadcasts: boolean,
  rewind = 0,
): Observable<PushletMessage> {
  assertRewind(rewind, 'subscribe(topics, { rewind })');
  return new Observable<PushletMessage>((subscriber) => {
    const output: SessionOutput = {
      // With ids ordered per topic, `id` is the resume id to hand back as `lastEventId`.
      message: (envelope, id) => subscriber.next(id === undefined ? envelope.message : { ...envelope.message, id }),
      notice: () => undefined,
      queue: UNBOUNDED,
      end: () => subscriber.complete(),
    };
    const session = runtime.sessions.open(output, 'sse');
    session.subscribe(topics, lastEventId, undefined, rewind, broadcasts).catch((error: unknown) => subscriber.error(error));
    return () => session.dispose();
  });
}

/** @throws PushletValidationError unless `rewind` is a whole number of 0 or more. */
function assertRewind(rewind: unknown, name: string): void {
  if (!(typeof rewind === 'number' && Number.isSafeInteger(rewind) && rewind >= 0)) throw new PushletValidationError(MESSAGES.rewindOption(name));
}

/** A session's frames as Nest `MessageEvent`s, which Nest encodes as SSE. */
class MessageEventOutput implements SessionOutput {
  session: Session | undefined;
  readonly queue: WriteQueue;
  // Nest writes about the same bytes as the built-in route's text format.
  readonly meter = SSE_METERS.text;

  constructor(
    private readonly subscriber: Subscriber<MessageEvent>,
    request: IncomingMessage | undefined,
  ) {
    const socket = request?.socket;
    this.queue = socket ? { queuedBytes: () => socket.writableLength, drainSource: socket } : UNBOUNDED;
  }

  message(envelope: Envelope, id: string | undefined): void {
    // Nest encodes the frame; its size is about the payload's.
    if (this.session?.writer.admit(envelope.message.data.length + 64)) {
      this.subscriber.next({ id: id ?? envelope.id, type: envelope.message.event, data: envelope.message.data });
    }
  }

  notice(notice: Notice): void {
    // Nest numbers every event that has no id ("1", "2", …), which a browser would then send
    // back: a notice without one carries the connection's resume id instead.
    this.subscriber.next({ id: notice.id ?? this.session?.resumeId(), type: notice.event, data: notice.data });
  }

  end(): void {
    this.subscriber.complete();
  }
}

/** The queue of a session with no socket of its own to bound (server-side consumers). */
const UNBOUNDED: WriteQueue = { queuedBytes: () => 0, drainSource: new EventEmitter() };

/** Nest's exception of each status the module answers (see `httpStatusOf`). */
const HTTP_EXCEPTIONS: Record<number, new (message: string) => HttpException> = {
  400: BadRequestException,
  401: UnauthorizedException,
  403: ForbiddenException,
  503: ServiceUnavailableException,
};

/** Maps the module's errors onto Nest's HTTP exceptions (status: `httpStatusOf`); anything else passes through. */
export function toHttpException(error: unknown): unknown {
  const status = httpStatusOf(error);
  if (status === undefined) return error;
  const Exception = HTTP_EXCEPTIONS[status];
  return Exception ? new Exception((error as Error).message) : new HttpException((error as Error).message, status);
}
