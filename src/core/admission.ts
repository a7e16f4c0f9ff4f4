import type { IncomingMessage } from 'node:http';
import type { LoggerService } from '@nestjs/common';
import type { ResolvedPushletOptions } from '../interfaces/pushlet-options.interface.js';
import type { PushletIdentity, PushletTransport } from '../protocol/frames.js';
import { MESSAGES } from '../pushlet.messages.js';
import { ConnectionTracker, type ConnectionSlot } from './connection-tracker.js';
import type { CoreCounters, PushletRefusalReason } from './counters.js';
import { PushletForbiddenError, PushletShuttingDownError, PushletUnauthorizedError, PushletValidationError } from './errors.js';
import { askHook } from './hooks.js';
import { clientAddress } from './client-address.js';
import { refusalReasonOf } from './refusals.js';
import { assertSubscribableTopic } from './topic.js';
import { isPattern } from '../protocol/topics.js';

const NO_SLOT: ConnectionSlot = { release: () => undefined };

/** What `authenticate` is told besides the request. */
export interface AuthenticateContext {
  readonly transport: PushletTransport;
  readonly token?: string;
  readonly identity?: PushletIdentity;
}

/** What a transport asks before a connection opens: the shutdown gate, who it is, and refusals to count. */
export interface ConnectionGate {
  /** Closes the gate: the app is shutting down (whichever shutdown hook comes first). */
  close(): void;
  /** @throws PushletShuttingDownError once the app has begun shutting down (counted for connections). */
  checkOpen(request?: IncomingMessage): void;
  identify(request: IncomingMessage, transport: PushletTransport): Promise<PushletIdentity | null>;
  /** Counts a connection turned away by `error` (when it is a refusal), and returns it. */
  refused<E>(error: E): E;
  /** Counts a connection turned away for `reason` without an error (a WebSocket from a foreign origin). */
  refusedFor(reason: PushletRefusalReason): void;
}

/**
 * Who may connect and to what: the shutdown gate, `authenticate`, the topic rules and
 * `authorize`, the connection limits, and the count of every connection turned away. One place
 * for these rules, whatever the transport.
 */
export class Admission implements ConnectionGate {
  private readonly connections: ConnectionTracker;
  private closing = false;
  /** Identities found by {@link identify} for requests whose session is not open yet (WebSocket upgrades). */
  private readonly identities = new WeakMap<IncomingMessage, PushletIdentity | null>();

  constructor(
    private readonly options: Pick<ResolvedPushletOptions, 'limits' | 'authenticate' | 'authorize'>,
    private readonly counters: CoreCounters,
    private readonly logger: LoggerService,
    /** Whether the broker routes pattern subscriptions. */
    private readonly supportsPatterns: () => boolean = () => true,
  ) {
    this.connections = new ConnectionTracker(options.limits);
  }

  /** Open connections, per transport, address and user (what `stats()` reports). */
  connectionStats() {
    return this.connections.snapshot();
  }

  /** From here on no connection opens: the app is shutting down and would not end it. */
  close(): void {
    this.closing = true;
  }

  get isClosing(): boolean {
    return this.closing;
  }

  checkOpen(request?: IncomingMessage): void {
    if (!this.closing) return;
    const error = new PushletShuttingDownError(MESSAGES.shuttingDown, 'shutdown');
    throw request ? this.refused(error) : error;
  }

  refused<E>(error: E): E {
    const reason = refusalReasonOf(error);
    if (reason) this.counters.refusal(reason);
    return error;
  }

  refusedFor(reason: PushletRefusalReason): void {
    this.counters.refusal(reason);
  }

  /**
   * A slot for a new connection (with a `request`: counted against the limits and in `stats()`),
   * and who it is: the identity given, or the one {@link identify} found for its upgrade.
   * @throws PushletLimitError when the app is shutting down or a limit is reached (counted).
   */
  admit(transport: PushletTransport, request: IncomingMessage | undefined, identity: PushletIdentity | null | undefined) {
    this.checkOpen(request);
    // Read only where it is counted; the session reads it when it needs it (logs).
    const address = request && this.connections.countsAddresses ? clientAddress(request) : undefined;
    const who = identity ?? (request ? this.takeIdentity(request) : undefined) ?? null;
    let slot = NO_SLOT;
    if (request) {
      try {
        slot = this.connections.acquire(transport, address, who?.id);
      } catch (error) {
        throw this.refused(error);
      }
    }
    return { address, identity: who, slot };
  }

  /**
   * Runs the `authenticate` option for a new connection's request (before any header or upgrade
   * answer) and keeps the identity for its session. Without the option, connections are anonymous
   * (`null`).
   * @throws PushletUnauthorizedError when the hook says no, throws, or returns an expired identity (counted).
   */
  async identify(request: IncomingMessage, transport: PushletTransport): Promise<PushletIdentity | null> {
    if (!this.options.authenticate) return null;
    try {
      const identity = await this.askAuthenticate(request, { transport });
      // The WebSocket session opens after the upgrade, in another callback: it takes it from here.
      if (transport === 'ws') this.identities.set(request, identity);
      return identity;
    } catch (error) {
      throw this.refused(error);
    }
  }

  /**
   * Asks the `authenticate` option again with a `refresh` command's token; the new identity must
   * name the same user as `context.identity`.
   * @throws PushletUnauthorizedError when it says no, throws, returns no valid identity, one already expired, or another user.
   */
  async reauthenticate(request: IncomingMessage, context: AuthenticateContext): Promise<PushletIdentity> {
    const identity = await this.askAuthenticate(request, context);
    if (identity === null) throw new PushletUnauthorizedError(MESSAGES.unauthenticated);
    if (context.identity && identity.id !== context.identity.id) throw new PushletUnauthorizedError(MESSAGES.refreshOtherUser);
    return identity;
  }

  /** The `authenticate` option's answer, checked: an identity, or `null` for an anonymous connection. */
  private async askAuthenticate(request: IncomingMessage, context: AuthenticateContext): Promise<PushletIdentity | null> {
    const authenticate = this.options.authenticate;
    if (!authenticate) throw new PushletUnauthorizedError(MESSAGES.refreshUnsupported);
    const identity: unknown = await askHook(this.logger, 'authenticate', '', () => authenticate(request, context), false);
    if (identity === false) throw new PushletUnauthorizedError(MESSAGES.unauthenticated);
    if (identity === null) return null;
    if (!isIdentity(identity)) {
      this.logger.error(MESSAGES.identityInvalid);
      throw new PushletUnauthorizedError(MESSAGES.unauthenticated);
    }
    if (identity.expiresAt !== undefined && identity.expiresAt <= Date.now()) throw new PushletUnauthorizedError(MESSAGES.identityExpired);
    return identity;
  }

  /** The identity {@link identify} found for a WebSocket upgrade, handed over once. */
  private takeIdentity(request: IncomingMessage): PushletIdentity | null | undefined {
    const identity = this.identities.get(request);
    this.identities.delete(request);
    return identity;
  }

  /**
   * Checks a connection's topic list against the contract and the limit, throwing a
   * {@link PushletValidationError} for the first problem.
   */
  validateTopics(topics: readonly unknown[], subscribed: readonly string[] = []): asserts topics is string[] {
    const limit = this.options.limits.topicsPerConnection;
    if (topics.length + subscribed.length > limit) throw new PushletValidationError(MESSAGES.tooManyTopics(limit));
    for (const topic of topics) assertSubscribableTopic(topic);
    const patterns = (topics as string[]).filter(isPattern);
    if (patterns.length === 0) return;
    if (!this.supportsPatterns()) throw new PushletValidationError(MESSAGES.patternUnavailable);
    const patternLimit = this.options.limits.patternsPerConnection;
    if (patterns.length + subscribed.filter(isPattern).length > patternLimit) throw new PushletValidationError(MESSAGES.tooManyPatterns(patternLimit));
  }

  /** Asks the `authorize` option about each topic; throws {@link PushletForbiddenError} at the first no. */
  async authorize(topics: readonly string[], transport: PushletTransport, request: IncomingMessage, identity: PushletIdentity | null = null): Promise<void> {
    const authorize = this.options.authorize;
    if (!authorize) return;
    for (const topic of topics) {
      const allowed = await askHook(this.logger, 'authorize', ` for topic "${topic}"`, () => authorize({ topic, transport, request, identity }), false);
      if (allowed !== true) throw new PushletForbiddenError(MESSAGES.forbiddenTopic(topic));
    }
  }
}

/** An identity as the contract has it: a plain object with a non-empty string `id`, and a finite `expiresAt` if any. */
export function isIdentity(value: unknown): value is PushletIdentity {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const { id, expiresAt } = value as { id?: unknown; expiresAt?: unknown };
  if (typeof id !== 'string' || id.length === 0) return false;
  return expiresAt === undefined || (typeof expiresAt === 'number' && Number.isFinite(expiresAt));
}
