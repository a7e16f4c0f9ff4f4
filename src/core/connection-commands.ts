import type { LoggerService } from '@nestjs/common';
import type { PushletClientPublishContext, PushletClientPublishDecision, ResolvedPushletOptions } from '../interfaces/pushlet-options.interface.js';
import { EVENTS, topicsNotice, type Command, type CommandError, type CommandRef, type HistoryData } from '../protocol/index.js';
import { MESSAGES } from '../pushlet.messages.js';
import type { Admission } from './admission.js';
import { PushletError, PushletForbiddenError, PushletUnavailableError, PushletValidationError } from './errors.js';
import type { HistoryReader } from './history-reader.js';
import { askHook } from './hooks.js';
import type { PresenceReader } from './presence-manager.js';
import type { MessagePublisher } from './publisher.js';
import type { Session } from './session.js';
import { assertEvent, dataToString } from './topic.js';

/** What the commands of a two-way connection need from the rest of the module. */
export interface ConnectionCommandsContext {
  readonly options: Pick<ResolvedPushletOptions, 'authorizePublish' | 'onClientPublish' | 'limits'>;
  readonly admission: Pick<Admission, 'reauthenticate'>;
  readonly publisher: MessagePublisher;
  readonly presence: PresenceReader;
  readonly history: HistoryReader;
  readonly logger: LoggerService;
}

/**
 * The commands of a two-way connection (subscribe, unsubscribe, publish, presence, history, refresh,
 * ping), run on its session whatever carries them: the WebSocket endpoint parses a frame into a
 * {@link Command} and hands it here; the replies are the session's notices. The module's own
 * errors are answered with `pushlet:error`; a `PushletUnavailableError` (the broker cannot place
 * a start now) is thrown for the transport to end the connection so that the client comes back.
 */
export class ConnectionCommands {
  constructor(private readonly context: ConnectionCommandsContext) {}

  /**
   * The connection's first task: subscribes the topics of its URL that it may have (the refused
   * ones are named in `pushlet:error` frames after `pushlet:connected`) and broadcasts, resuming
   * them after `lastEventId` when given.
   */
  async open(session: Session, topics: readonly string[], lastEventId: string | undefined, rewind = 0): Promise<void> {
    const { accepted, refused } = await session.admitEach(topics);
    await session.start(accepted, lastEventId, refused, rewind);
  }

  /** Answers a frame that is not a command (`pushlet:error`, with its topic and `ref` when known). */
  malformed(session: Session, { reason, topic, ref }: CommandError): void {
    session.notice({ event: EVENTS.error, data: reason, topic, ref });
  }

  /** Runs one command; the module's own errors are answered with a `pushlet:error` frame. */
  async run(session: Session, command: Command): Promise<void> {
    try {
      switch (command.action) {
        case 'ping':
          session.notice({ event: EVENTS.pong, data: '', ref: command.ref });
          break;
        case 'subscribe':
          await this.subscribe(session, command.topics, command.lastEventId, command.ref, command.rewind);
          break;
        case 'unsubscribe':
          this.unsubscribe(session, command.topics, command.ref);
          break;
        case 'publish':
          await this.publish(session, command);
          break;
        case 'refresh':
          await this.refresh(session, command.token, command.ref);
          break;
        case 'presence':
          await this.presence(session, command.topic, command.ref);
          break;
        case 'history':
          await this.history(session, command);
          break;
      }
    } catch (error) {
      if (!(error instanceof PushletError)) throw error;
      session.notice({ event: EVENTS.error, data: error.message, topic: commandTopic(command), ref: command.ref });
    }
  }

  /**
   * Subscribes the topics the connection may have (a refused topic gets its own error, the
   * others still subscribe) and answers once they are live, after any replay. Subscribing twice
   * is not an error: the reply says the topic is subscribed, which it is.
   */
  private async subscribe(
    session: Session,
    topics: readonly string[],
    lastEventId: string | undefined,
    ref: CommandRef | undefined,
    rewind: number | undefined,
  ): Promise<void> {
    const { accepted, refused } = await session.admitEach(topics);
    for (const { topic, reason } of refused) session.notice({ event: EVENTS.error, data: reason, topic, ref });
    if (accepted.length === 0) return;
    await session.subscribe(accepted, lastEventId, ref, rewind);
    session.notice(topicsNotice(EVENTS.subscribed, session.topics, { topic: accepted.length === 1 ? accepted[0] : undefined, ref }));
  }

  /** Leaving a topic that is not subscribed is not an error either. */
  private unsubscribe(session: Session, topics: readonly string[], ref: CommandRef | undefined): void {
    session.unsubscribe(topics);
    session.notice(topicsNotice(EVENTS.unsubscribed, session.topics, { topic: topics.length === 1 ? topics[0] : undefined, ref }));
  }

  /**
   * A client's publication: allowed only where `authorizePublish` says yes (default no), then
   * `onClientPublish` may change or refuse it; published like the server's own (same rules and
   * size limit), answered with its id.
   */
  private async publish(session: Session, command: Extract<Command, { action: 'publish' }>): Promise<void> {
    const { options, logger, publisher } = this.context;
    const { authorizePublish, onClientPublish } = options;
    const about = ` for topic "${command.topic}"`;
    const request = session.request!;
    const asked: PushletClientPublishContext = { topic: command.topic, event: command.event, data: command.data, identity: session.identity, request };
    const allowed = authorizePublish !== undefined && (await askHook(logger, 'authorizePublish', about, () => authorizePublish(asked), false)) === true;
    if (!allowed) throw new PushletForbiddenError(MESSAGES.publishForbidden(command.topic));
    let { event, data } = command;
    if (onClientPublish) {
      // The app's hook failed: the publication is refused, the connection stays.
      const decision: PushletClientPublishDecision = await askHook(logger, 'onClientPublish', about, () => onClientPublish(asked), false as const);
      if (decision === false) throw new PushletForbiddenError(MESSAGES.publishForbidden(command.topic));
      if (decision && decision.event !== undefined) event = decision.event;
      if (decision && decision.data !== undefined) data = dataToString(decision.data);
    }
    assertEvent(event);
    const message = await publisher.publish(command.topic, event, data, 'client');
    session.notice({ event: EVENTS.published, data: '', id: message.id, topic: command.topic, ref: command.ref });
  }

  /** A new token for the connection: the hook runs again and must name the same user. */
  private async refresh(session: Session, token: string, ref: CommandRef | undefined): Promise<void> {
    const identity = await this.context.admission.reauthenticate(session.request!, {
      transport: session.transport,
      token,
      identity: session.identity ?? undefined,
    });
    session.refreshIdentity(identity);
    session.notice({ event: EVENTS.refreshed, data: JSON.stringify({ expiresAt: identity.expiresAt ?? null }), ref });
  }

  /** Who is on a presence topic the connection may subscribe to. */
  private async presence(session: Session, topic: string, ref: CommandRef | undefined): Promise<void> {
    const { refused } = await session.admitEach([topic]);
    if (refused.length > 0) throw new PushletForbiddenError(refused[0]!.reason);
    let data;
    try {
      data = await this.context.presence.members(topic);
    } catch (error) {
      // Presence that cannot be read now (Redis unreachable) is no reason to close the connection.
      if (!(error instanceof PushletUnavailableError)) throw error;
      session.notice({ event: EVENTS.error, data: error.message, topic, ref });
      return;
    }
    session.notice({ event: EVENTS.presence, data: JSON.stringify(data), topic, ref });
  }

  /**
   * A page of a topic's history, for a topic the connection may subscribe to (asked of `authorize`
   * like a subscription, whether or not it is subscribed): answered `pushlet:history`. A limit over
   * `limits.maxHistoryPage` is refused rather than cut, so that a short page always means the
   * history holds no more; a read while the broker is unreachable is answered `pushlet:error`.
   */
  private async history(session: Session, command: Extract<Command, { action: 'history' }>): Promise<void> {
    const { topic, before, ref } = command;
    const max = this.context.options.limits.maxHistoryPage;
    const limit = command.limit ?? max;
    if (limit > max) throw new PushletValidationError(MESSAGES.historyLimit(max));
    await session.admitRead(topic);
    let messages;
    try {
      messages = await this.context.history.read(topic, limit, before);
    } catch (error) {
      if (!(error instanceof PushletUnavailableError)) throw error;
      session.notice({ event: EVENTS.error, data: error.message, topic, ref });
      return;
    }
    const data: HistoryData = { topic, messages };
    session.notice({ event: EVENTS.history, data: JSON.stringify(data), topic, ref });
  }
}

/** The topic a failed command is about, named in its error frame. */
function commandTopic(command: Command): string | undefined {
  if (command.action === 'subscribe' || command.action === 'unsubscribe') return command.topics.length === 1 ? command.topics[0] : undefined;
  if (command.action === 'publish' || command.action === 'presence' || command.action === 'history') return command.topic;
  return undefined;
}
