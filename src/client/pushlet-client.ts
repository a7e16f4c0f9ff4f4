import type { CommandRef, PresenceMember } from '../protocol/frames.js';
import { ERROR } from './wire.js';
import { CLIENT_TEXTS, PushletClientError, PushletCommandError } from './client-errors.js';
import { PushletClient as PushletClientCore } from './client-core.js';
import type { ClientFrame } from './transport.js';
import type { ClientMessage } from './client-types.js';

/** Who is on a presence topic: what {@link PushletClient.presence} resolves to. */
export interface PresenceResult {
  count: number;
  members: PresenceMember[];
}

/** Options of {@link PushletClient.history}. */
export interface HistoryOptions {
  /** Most messages (the newest ones); default the server's `limits.maxHistoryPage` (100), which is also the most it takes. */
  limit?: number;
  /** The id of a message: the page ending just before it (pass the first id of a page for the one before). */
  before?: string;
}

/** A `publish`, `presence`, `refresh` or `history` command awaiting its reply. */
interface PendingCommand {
  readonly action: string;
  readonly resolve: (frame: ClientFrame) => void;
  readonly reject: (error: Error) => void;
}

/**
 * The full Pushlet client (`pushlet-nestjs/client`, `pushlet-client.js`): the core client
 * (subscribe, reconnect, resume, both transports; `pushlet-client-core.js` alone) and the
 * WebSocket commands `publish`, `presence`, `refresh` and `history`.
 */
export class PushletClient extends PushletClientCore {
  /** Commands awaiting their reply, by `ref` (`c1`, `c2`, …: never a subscribe's number). */
  readonly #commands = new Map<CommandRef, PendingCommand>();
  #refs = 0;

  /**
   * Publishes a message from this client (WebSocket only; the server must allow it with
   * `authorizePublish`). `data`: a string is sent as is, any other JSON value as its JSON text.
   * Resolves with the message's id once the server has it.
   * @throws PushletCommandError when the server refuses it (not allowed, bad topic or event, too large, rate limit).
   * @throws PushletClientError when not connected over WebSocket, or the connection ends before the reply.
   */
  async publish(topic: string, event: string, data: unknown): Promise<{ id: string }> {
    const reply = await this.#command('publish', { topic, event, data });
    return { id: reply.id ?? '' };
  }

  /**
   * Who is on a presence topic, across every instance (WebSocket only; the topic must be one the
   * connection may subscribe to). Joins and leaves arrive as messages of the topic itself (events
   * `pushlet:join` and `pushlet:leave`, `data` the member as JSON) through `subscribe()`.
   * @throws PushletCommandError when the server refuses (not a presence topic, not allowed).
   * @throws PushletClientError when not connected over WebSocket, or the connection ends before the reply.
   */
  async presence(topic: string): Promise<PresenceResult> {
    const reply = await this.#command('presence', { topic });
    let value: Partial<PresenceResult> | undefined;
    try {
      value = JSON.parse(reply.data) as Partial<PresenceResult> | undefined;
    } catch {
      // Not JSON: nobody, as far as the client can tell.
    }
    const members = Array.isArray(value?.members) ? value.members : [];
    return { count: typeof value?.count === 'number' ? value.count : members.length, members };
  }

  /**
   * A page of a topic's history (WebSocket only; asked of the server's `authorize` like a
   * subscription): its newest messages still in history, oldest first, at most `limit`; with
   * `before`, the page ending just before that id. An empty or short page: nothing older.
   * @throws PushletCommandError when the server refuses (not allowed, a pattern, a bad limit or id, history unreadable now).
   * @throws PushletClientError when not connected over WebSocket, or the connection ends before the reply.
   */
  async history(topic: string, options: HistoryOptions = {}): Promise<ClientMessage[]> {
    const reply = await this.#command('history', { topic, ...options });
    try {
      const { messages } = JSON.parse(reply.data) as { messages: ClientMessage[] };
      return Array.isArray(messages) ? messages : [];
    } catch {
      return [];
    }
  }

  /**
   * Renews the connection's identity before it expires (WebSocket only): the server runs its
   * `authenticate` hook again with `token` (default: the `token` option, its function asked again).
   * A token passed here also replaces a fixed `token` option for later reconnects.
   * @throws PushletCommandError when the server refuses the token (the connection stays as it was).
   * @throws PushletClientError when there is no token, not connected over WebSocket, or the connection ends before the reply.
   */
  async refresh(token?: string): Promise<void> {
    const option = this._options.token;
    const value = token ?? (await (typeof option === 'function' ? option() : option));
    if (typeof value !== 'string' || value === '') throw new PushletClientError(CLIENT_TEXTS.noToken);
    await this.#command('refresh', { token: value });
    if (token !== undefined && typeof option !== 'function') this._options.token = token;
  }

  /** Sends a command over the open WebSocket and waits for its reply (same `ref`). */
  #command(action: string, fields: Record<string, unknown>): Promise<ClientFrame> {
    const ref = `c${++this.#refs}`;
    return new Promise<ClientFrame>((resolve, reject) => {
      this.#commands.set(ref, { action, resolve, reject });
      // `_send` throws on a closed client and on data JSON cannot carry (a BigInt, a cycle): the promise rejects with that.
      if (!this._send({ action, ...fields, ref })) this.#settle(ref, new PushletClientError(CLIENT_TEXTS.notWebSocket));
    }).finally(() => this.#commands.delete(ref));
  }

  /** Answers a pending command with its reply frame or an error; false when no command has that ref. */
  #settle(ref: CommandRef | undefined, outcome: ClientFrame | Error): boolean {
    const pending = ref === undefined ? undefined : this.#commands.get(ref);
    if (!pending) return false;
    this.#commands.delete(ref!);
    if (outcome instanceof Error) pending.reject(outcome);
    else pending.resolve(outcome);
    return true;
  }

  /** @internal A reply to one of this client's commands: `pushlet:error` rejects it, anything else answers it. */
  protected override _reply(frame: ClientFrame): boolean {
    const pending = this.#commands.get(frame.ref!);
    return this.#settle(frame.ref, pending && frame.event === ERROR ? new PushletCommandError(pending.action, frame.data) : frame);
  }

  /** @internal The connection is gone: every command still waiting fails. */
  protected override _dropped(closed: boolean): void {
    const error = new PushletClientError(closed ? CLIENT_TEXTS.closed : CLIENT_TEXTS.dropped);
    for (const ref of [...this.#commands.keys()]) this.#settle(ref, error);
  }
}
