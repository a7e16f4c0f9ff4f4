import type { IncomingMessage } from 'node:http';
import type { LoggerService } from '@nestjs/common';
import type { PushletControlCommand } from '../interfaces/broker.interface.js';
import type { PushletIdentity, PushletTransport } from '../protocol/frames.js';
import { MESSAGES } from '../pushlet.messages.js';
import type { Admission } from './admission.js';
import { checkControl, MAX_REASON_BYTES, MAX_USER_ID_LENGTH, truncateUtf8 } from './control.js';
import { PushletValidationError } from './errors.js';
import { Session, type SessionContext, type SessionOutput } from './session.js';

/** What a transport needs to open a connection's session. */
export interface SessionOpener {
  /**
   * Opens a session for a new connection: takes a slot (with a `request`: counted against the
   * limits and in `stats()`), or throws a `PushletLimitError` (a `PushletShuttingDownError`
   * once the app is shutting down).
   */
  open(output: SessionOutput, transport: PushletTransport, request?: IncomingMessage, identity?: PushletIdentity | null): Session;
}

/**
 * Every open session of this instance, whatever its transport: opened here, ended here at
 * shutdown and by control commands (`disconnect`), sought here by user.
 */
export class SessionRegistry implements SessionOpener, Iterable<Session> {
  private readonly sessions = new Set<Session>();
  private readonly context: SessionContext;

  constructor(
    private readonly admission: Admission,
    /** Sessions' shared context; `closed` is this registry's. */
    context: Omit<SessionContext, 'closed'>,
    /** Sends a control command to every other instance (the broker's control channel). */
    private readonly broadcastControl: (command: PushletControlCommand) => Promise<void>,
    private readonly logger: LoggerService,
  ) {
    this.context = { ...context, closed: (session) => this.sessions.delete(session) };
  }

  open(output: SessionOutput, transport: PushletTransport, request?: IncomingMessage, identity?: PushletIdentity | null): Session {
    const admitted = this.admission.admit(transport, request, identity);
    const session = new Session(this.context, output, transport, admitted.address, admitted.slot, request, admitted.identity);
    this.sessions.add(session);
    return session;
  }

  get size(): number {
    return this.sessions.size;
  }

  [Symbol.iterator](): Iterator<Session> {
    return this.sessions.values();
  }

  /** Ends every session still open (at shutdown); false when there was none. */
  endAll(): boolean {
    const open = [...this.sessions];
    for (const session of open) session.end('shutdown');
    return open.length > 0;
  }

  /** The open sessions of user `userId` on this instance. */
  sessionsOf(userId: string): Session[] {
    return [...this.sessions].filter((session) => session.identity?.id === userId && !session.isEnded);
  }

  /**
   * Closes every connection of user `userId`: this instance's at once (their number is the
   * result), every other instance's through the broker's control channel.
   * @throws PushletValidationError for a user id that is not a non-empty string, or a reason that is not a string.
   * @throws the broker's error when it cannot send the command (this instance's connections are closed already).
   */
  async disconnect(userId: string, reason?: string): Promise<number> {
    if (typeof userId !== 'string' || userId.length === 0 || userId.length > MAX_USER_ID_LENGTH) {
      throw new PushletValidationError(MESSAGES.disconnectUserId(MAX_USER_ID_LENGTH));
    }
    if (reason !== undefined && typeof reason !== 'string') throw new PushletValidationError(MESSAGES.disconnectReason);
    const command: PushletControlCommand = { kind: 'disconnect', userId, reason: truncateUtf8(reason ?? MESSAGES.disconnected, MAX_REASON_BYTES) };
    const closed = this.runControl(command);
    await this.broadcastControl(command);
    return closed;
  }

  /** A control command from the broker (any instance's, this one's included): checked again, then run. */
  readonly onControl = (command: PushletControlCommand): void => {
    const checked = checkControl(command);
    if (!checked) {
      this.logger.warn(MESSAGES.controlMalformed);
      return;
    }
    const closed = this.runControl(checked);
    if (closed > 0) this.logger.debug?.(`closed ${closed} connection(s) of a disconnected user`);
  };

  /** Runs one control command on this instance; resolves with the number of connections it closed. */
  private runControl(command: PushletControlCommand): number {
    switch (command.kind) {
      case 'disconnect': {
        const sessions = this.sessionsOf(command.userId);
        for (const session of sessions) session.end('disconnected', command.reason);
        return sessions.length;
      }
    }
  }
}
