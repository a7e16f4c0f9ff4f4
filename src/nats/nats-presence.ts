import { StorageType, type KV, type NatsConnection } from 'nats';
import type { PresenceEntry, PresenceRefresh, PresenceStore } from '../core/presence.js';
import type { PresenceData, PresenceMember } from '../protocol/frames.js';

/** A member as the bucket keeps it: the member, and when it expires (ms; refreshed by its instance). */
interface Stored {
  readonly m: PresenceMember;
  readonly e: number;
}

/**
 * Presence in a JetStream key-value bucket: one key per member, `<topic>.<client id>` (each in
 * base64url), its value the member and when it expires. Who adds or removes a member is decided
 * by the bucket's revisions (`create` only when absent; `delete` only at the revision read), so
 * each join and leave is announced once across instances. The server this adapter targets (2.9)
 * has no per-key expiry: each instance pushes its members' expiry forward on every refresh and
 * sweeps the expired members of the topics it serves, as the Redis store does.
 */
export class NatsPresenceStore implements PresenceStore {
  private bucket: Promise<KV> | undefined;

  constructor(
    private readonly connection: () => NatsConnection,
    private readonly name: string,
    private readonly storage: 'file' | 'memory',
    private readonly ttlMs: number,
    private readonly timeoutMs: number,
    private readonly available: (listener: () => void) => () => void,
  ) {}

  /** The bucket is opened (created when missing) again after the link came back: the server may have lost it. */
  reset(): void {
    this.bucket = undefined;
  }

  onAvailable(listener: () => void): () => void {
    return this.available(listener);
  }

  async add(entries: readonly PresenceEntry[]): Promise<boolean[]> {
    const kv = await this.kv();
    const expires = Date.now() + this.ttlMs;
    return Promise.all(
      entries.map(({ topic, member }) =>
        kv.create(key(topic, member.clientId), JSON.stringify({ m: member, e: expires } satisfies Stored)).then(
          () => true,
          (error: unknown) => (isConflict(error) ? false : Promise.reject(error)),
        ),
      ),
    );
  }

  async remove(members: ReadonlyArray<{ readonly topic: string; readonly clientId: string }>): Promise<boolean[]> {
    const kv = await this.kv();
    return Promise.all(members.map(({ topic, clientId }) => this.removeKey(kv, key(topic, clientId), () => true)));
  }

  /** Deletes a key at the revision read (retrying if it moved meanwhile); true when this call deleted it. */
  private async removeKey(kv: KV, name: string, due: (stored: Stored) => boolean): Promise<boolean> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const entry = await kv.get(name);
      if (!entry || entry.operation !== 'PUT') return false;
      if (!due(entry.json<Stored>())) return false;
      try {
        await kv.delete(name, { previousSeq: entry.revision });
        return true;
      } catch (error) {
        if (!isConflict(error)) throw error;
      }
    }
    return false;
  }

  async refresh(local: ReadonlyMap<string, readonly string[]>, sweep: readonly string[]): Promise<PresenceRefresh> {
    const kv = await this.kv();
    const expires = Date.now() + this.ttlMs;
    const missing: Array<{ topic: string; clientId: string }> = [];
    const refreshes: Array<Promise<void>> = [];
    for (const [topic, clientIds] of local) {
      for (const clientId of clientIds) {
        refreshes.push(
          (async () => {
            const name = key(topic, clientId);
            const entry = await kv.get(name);
            if (!entry || entry.operation !== 'PUT') return void missing.push({ topic, clientId });
            const stored = entry.json<Stored>();
            try {
              await kv.update(name, JSON.stringify({ m: stored.m, e: expires } satisfies Stored), entry.revision);
            } catch (error) {
              if (!isConflict(error)) throw error;
              // Swept meanwhile (this instance stalled): add it again.
              missing.push({ topic, clientId });
            }
          })(),
        );
      }
    }
    await Promise.all(refreshes);
    const expired: PresenceEntry[] = [];
    const now = Date.now();
    for (const topic of sweep) {
      for (const [name, stored] of await this.entries(kv, topic)) {
        if (stored.e >= now) continue;
        if (await this.removeKey(kv, name, (latest) => latest.e < now)) expired.push({ topic, member: stored.m });
      }
    }
    return { missing, expired };
  }

  async members(topic: string): Promise<PresenceData> {
    const now = Date.now();
    const members = [...(await this.entries(await this.kv(), topic)).values()].filter((stored) => stored.e >= now).map((stored) => stored.m);
    members.sort((a, b) => (a.since < b.since ? -1 : a.since > b.since ? 1 : 0));
    return { count: members.length, members };
  }

  async count(topic: string): Promise<number> {
    return (await this.members(topic)).count;
  }

  private async entries(kv: KV, topic: string): Promise<Map<string, Stored>> {
    const names: string[] = [];
    for await (const name of await kv.keys(`${encode(topic)}.*`)) names.push(name);
    const out = new Map<string, Stored>();
    await Promise.all(
      names.map(async (name) => {
        const entry = await kv.get(name);
        if (entry && entry.operation === 'PUT') out.set(name, entry.json<Stored>());
      }),
    );
    return out;
  }

  private kv(): Promise<KV> {
    if (!this.bucket) {
      const opening = this.connection()
        .jetstream({ timeout: this.timeoutMs })
        .views.kv(this.name, { history: 1, storage: this.storage === 'memory' ? StorageType.Memory : StorageType.File, timeout: this.timeoutMs });
      opening.catch(() => {
        if (this.bucket === opening) this.bucket = undefined;
      });
      this.bucket = opening;
    }
    return this.bucket;
  }
}

function encode(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64url') || '_';
}

function key(topic: string, clientId: string): string {
  return `${encode(topic)}.${encode(clientId)}`;
}

/** The bucket refused a write at a revision that moved (or a create of a key that exists). */
function isConflict(error: unknown): boolean {
  const api = (error as { api_error?: { err_code?: number } } | undefined)?.api_error;
  if (api?.err_code === 10071) return true;
  return error instanceof Error && /wrong last sequence|key exists/i.test(error.message);
}
