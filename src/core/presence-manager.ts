import type { LoggerService } from '@nestjs/common';
import { EVENTS, type PresenceData, type PresenceMember, type PushletIdentity } from '../protocol/frames.js';
import { publishTopicProblem } from '../protocol/topics.js';
import { MESSAGES } from '../pushlet.messages.js';
import { PushletUnavailableError, PushletValidationError } from './errors.js';
import { PerTurn } from './per-turn.js';
import type { PresenceEntry, PresenceStore } from './presence.js';

/** A connection as presence sees it (a `Session`). */
export interface PresenceClient {
  readonly clientId: string;
  readonly identity: PushletIdentity | null;
  readonly transport: 'sse' | 'ws';
  /** Connections have one; server-side consumers (`PushletService.subscribe`) are not members. */
  readonly request?: unknown;
}

export interface PresenceSettings {
  readonly isPresenceTopic: (topic: string) => boolean;
  readonly ttlMs: number;
}

export interface PresenceHooks {
  /**
   * Publishes a join or leave as a message of the topic itself, through the broker: delivered
   * like any message (once, in order, resumable) on every instance and transport.
   */
  readonly publish: (topic: string, event: string, data: string) => Promise<unknown>;
  /** Topics with local subscribers: this instance sweeps the presence topics among them. */
  readonly servedTopics: () => readonly string[];
}

type MemberKey = { readonly topic: string; readonly clientId: string };

/**
 * This instance's side of presence: which local connections are members of which topics, the
 * joins and leaves they cause, and the refresh that keeps them alive in a shared store and sweeps
 * the members of instances that stopped (crashed) without saying goodbye.
 *
 * A join or leave is published by whoever changed the store (its `add` or `remove` said so, or
 * its refresh swept the member): exactly once across instances. Adds and removes of one
 * event-loop turn go to the store together ({@link PerTurn}). Nothing here throws at a caller
 * that did not ask (a store that cannot be reached is logged; the refresh re-adds this instance's
 * members once it can).
 */
export class PresenceManager {
  /** topic → clientId → member, for this instance's connections. */
  private readonly local = new Map<string, Map<string, PresenceMember>>();
  private readonly adds: PerTurn<PresenceEntry, boolean>;
  private readonly removes: PerTurn<MemberKey, boolean>;
  /** Joins and leaves on their way (to the store, then the broker): waited for at shutdown. */
  private readonly pending = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private refreshing: Promise<void> | undefined;
  private failing = false;
  private stopListening: (() => void) | undefined;

  constructor(
    private readonly store: PresenceStore,
    private readonly settings: PresenceSettings,
    private readonly hooks: PresenceHooks,
    private readonly logger: LoggerService,
  ) {
    this.adds = new PerTurn((entries) => store.add(entries));
    this.removes = new PerTurn((members) => store.remove(members));
  }

  /** How often this instance refreshes its members and sweeps expired ones: a third of the time-to-live. */
  get intervalMs(): number {
    return Math.max(1, Math.floor(this.settings.ttlMs / 3));
  }

  /** True for a topic whose subscribers are members (a concrete presence topic, not a pattern). */
  isPresenceTopic(topic: string): boolean {
    return publishTopicProblem(topic) === undefined && this.settings.isPresenceTopic(topic);
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.refresh(), this.intervalMs);
    this.timer.unref();
    this.stopListening = this.store.onAvailable?.(() => this.refresh());
  }

  /** Stops refreshing and waits for the joins and leaves on their way (the caller bounds the wait). */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    this.stopListening?.();
    this.stopListening = undefined;
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
    await this.refreshing;
  }

  /** `topics` of `client` are live: each presence topic among them gains a member. */
  joined(client: PresenceClient, topics: readonly string[]): void {
    if (client.request === undefined) return;
    for (const topic of topics) {
      if (!this.isPresenceTopic(topic)) continue;
      let members = this.local.get(topic);
      if (members?.has(client.clientId)) continue;
      if (!members) this.local.set(topic, (members = new Map()));
      const member: PresenceMember = { clientId: client.clientId, identity: client.identity, transport: client.transport, since: new Date().toISOString() };
      members.set(client.clientId, member);
      this.track(this.join(topic, member));
    }
  }

  /** `client` let go of `topics` (unsubscribed, or the connection ended): its memberships end. */
  left(client: PresenceClient, topics: readonly string[]): void {
    for (const topic of topics) {
      const members = this.local.get(topic);
      const member = members?.get(client.clientId);
      if (!members || !member) continue;
      members.delete(client.clientId);
      if (members.size === 0) this.local.delete(topic);
      this.track(this.leave(topic, member));
    }
  }

  /**
   * Who is on `topic`, across instances.
   * @throws PushletValidationError when `topic` is not a presence topic.
   * @throws PushletUnavailableError when the store cannot be read now (Redis unreachable).
   */
  async members(topic: string): Promise<PresenceData> {
    this.assertPresenceTopic(topic);
    return this.ask(this.store.members(topic));
  }

  /** How many are on `topic`, across instances (same errors as {@link members}). */
  async count(topic: string): Promise<number> {
    this.assertPresenceTopic(topic);
    return this.ask(this.store.count(topic));
  }

  /** Members of this instance now (for tests and stats). */
  get localCount(): number {
    let count = 0;
    for (const members of this.local.values()) count += members.size;
    return count;
  }

  private assertPresenceTopic(topic: string): void {
    const problem = publishTopicProblem(topic);
    if (problem) throw new PushletValidationError(problem);
    if (!this.settings.isPresenceTopic(topic)) throw new PushletValidationError(MESSAGES.presenceOff(topic));
  }

  private async ask<T>(answer: Promise<T>): Promise<T> {
    try {
      return await answer;
    } catch (error) {
      throw new PushletUnavailableError(MESSAGES.presenceUnavailable, error);
    }
  }

  private async join(topic: string, member: PresenceMember): Promise<void> {
    // Added by another call already (a refresh re-adding it): that call published the join.
    if (await this.adds.call({ topic, member })) await this.hooks.publish(topic, EVENTS.join, JSON.stringify(member));
  }

  private async leave(topic: string, member: PresenceMember): Promise<void> {
    // Not removed here: it was never added (the store was unreachable), or a sweep removed it and published the leave.
    if (await this.removes.call({ topic, clientId: member.clientId })) await this.hooks.publish(topic, EVENTS.leave, JSON.stringify(member));
  }

  private track(work: Promise<void>): void {
    const tracked = work.then(
      () => this.recovered(),
      (error: unknown) => this.failed(error),
    );
    this.pending.add(tracked);
    void tracked.finally(() => this.pending.delete(tracked));
  }

  /** One refresh at a time; a tick that finds one still running skips. */
  private refresh(): void {
    if (this.refreshing || !this.timer) return;
    this.refreshing = this.refreshOnce()
      .then(
        () => this.recovered(),
        (error: unknown) => this.failed(error),
      )
      .finally(() => (this.refreshing = undefined));
  }

  private async refreshOnce(): Promise<void> {
    const local = new Map<string, string[]>();
    for (const [topic, members] of this.local) local.set(topic, [...members.keys()]);
    const sweep = new Set(local.keys());
    for (const topic of this.hooks.servedTopics()) if (this.isPresenceTopic(topic)) sweep.add(topic);
    if (sweep.size === 0) return;
    const { missing, expired } = await this.store.refresh(local, [...sweep]);
    // Lost by the store (Redis lost its data, or swept us while we stalled): added again, with a join.
    for (const { topic, clientId } of missing) {
      const member = this.local.get(topic)?.get(clientId);
      if (member) this.track(this.join(topic, member));
    }
    for (const { topic, member } of expired) this.track(this.hooks.publish(topic, EVENTS.leave, JSON.stringify(member)).then(() => undefined));
  }

  private recovered(): void {
    if (!this.failing) return;
    this.failing = false;
    this.logger.log('presence: the store answers again');
  }

  private failed(error: unknown): void {
    if (this.failing) return;
    this.failing = true;
    this.logger.warn(
      `presence: ${MESSAGES.presenceUnavailable} (${error instanceof Error ? error.message : String(error)}); members are added again once it answers`,
    );
  }
}

/** Who is on a presence topic, across instances: what `PushletService` and the `presence` command read. */
export interface PresenceReader {
  /** @throws PushletValidationError when `topic` is not a presence topic (or presence is off). */
  members(topic: string): Promise<PresenceData>;
  /** How many; same errors as {@link members}. */
  count(topic: string): Promise<number>;
}

/** The presence reader of `manager`, or one that says presence is off when there is none. */
export function presenceReader(manager: PresenceManager | undefined): PresenceReader {
  if (manager) return manager;
  const off = async (topic: string): Promise<never> => {
    throw new PushletValidationError(MESSAGES.presenceOff(topic));
  };
  return { members: off, count: off };
}
