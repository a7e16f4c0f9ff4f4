import type { PresenceData, PresenceMember } from '../protocol/frames.js';

/** A member of a topic, as a store keeps it. */
export interface PresenceEntry {
  readonly topic: string;
  readonly member: PresenceMember;
}

/** What one refresh found: local members a store no longer had, and members it swept as expired. */
export interface PresenceRefresh {
  /** Members of this instance the store did not hold (lost with Redis's data, or swept while this instance stalled). */
  readonly missing: ReadonlyArray<{ readonly topic: string; readonly clientId: string }>;
  /** Members whose time ran out (their instance stopped refreshing them), removed by this call: a leave is due for each. */
  readonly expired: readonly PresenceEntry[];
}

/**
 * Where presence members live: in memory for one instance, in Redis for many. Each member is
 * added and removed exactly once across instances: `add` and `remove` say whether this call did
 * it, and whoever did publishes the `pushlet:join` or `pushlet:leave`.
 */
export interface PresenceStore {
  /** Adds each member (one connection on one topic); for each, true when this call added it (a join is due). */
  add(entries: readonly PresenceEntry[]): Promise<boolean[]>;
  /** Removes each member; for each, true when this call removed it (a leave is due). */
  remove(members: ReadonlyArray<{ readonly topic: string; readonly clientId: string }>): Promise<boolean[]>;
  /**
   * Keeps this instance's members alive (`local`: topic to client ids) and sweeps the expired
   * members of `sweep` (the presence topics this instance serves). Called every third of the
   * time-to-live.
   */
  refresh(local: ReadonlyMap<string, readonly string[]>, sweep: readonly string[]): Promise<PresenceRefresh>;
  /** Who is on `topic` now. */
  members(topic: string): Promise<PresenceData>;
  /** How many are on `topic` now (cheaper than {@link members}). */
  count(topic: string): Promise<number>;
  /**
   * Calls `listener` whenever the store can be reached again after an outage (the Redis link is
   * back): the instance refreshes at once, adding again what the store lost. Returns the function
   * that stops it. Optional: without it, the next periodic refresh does the same.
   */
  onAvailable?(listener: () => void): () => void;
}

/**
 * Presence of one instance, in memory: members come and go with their connections, so nothing
 * ever expires. The default when the broker offers no store of its own (see
 * `PushletBroker.presenceStore`); with a broker that joins instances, each instance then sees only
 * its own members.
 */
export class MemoryPresenceStore implements PresenceStore {
  private readonly topics = new Map<string, Map<string, PresenceMember>>();

  async add(entries: readonly PresenceEntry[]): Promise<boolean[]> {
    return entries.map(({ topic, member }) => {
      let members = this.topics.get(topic);
      if (!members) this.topics.set(topic, (members = new Map()));
      if (members.has(member.clientId)) return false;
      members.set(member.clientId, member);
      return true;
    });
  }

  async remove(members: ReadonlyArray<{ readonly topic: string; readonly clientId: string }>): Promise<boolean[]> {
    return members.map(({ topic, clientId }) => {
      const list = this.topics.get(topic);
      if (!list?.delete(clientId)) return false;
      if (list.size === 0) this.topics.delete(topic);
      return true;
    });
  }

  async refresh(): Promise<PresenceRefresh> {
    return { missing: [], expired: [] };
  }

  async members(topic: string): Promise<PresenceData> {
    const members = [...(this.topics.get(topic)?.values() ?? [])];
    return { count: members.length, members };
  }

  async count(topic: string): Promise<number> {
    return this.topics.get(topic)?.size ?? 0;
  }
}
