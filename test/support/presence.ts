import type { IncomingMessage } from 'node:http';
import type { PresenceMember, PushletModuleOptions } from '../../src/index.js';
import { SseClient } from './sse-client.js';
import { WsClient } from './ws-client.js';

/** The presence part of an app's options: `room/` topics, identity from `?user=` (none: anonymous). */
export function presenceOptions(ttlMs = 15_000): Pick<PushletModuleOptions, 'presence' | 'authenticate'> {
  return {
    presence: { topics: ['room/'], ttlMs },
    authenticate: (request: IncomingMessage) => {
      const user = new URL(request.url ?? '/', 'http://localhost').searchParams.get('user');
      return user ? { id: user } : null;
    },
  };
}

/** Where a presence client connects: an app instance in this process or a sample process. */
export interface Endpoint {
  readonly url: string;
  readonly wsUrl: string;
}

/** A join or leave as a subscriber saw it. */
export interface SeenPresence {
  readonly event: 'pushlet:join' | 'pushlet:leave';
  readonly member: PresenceMember;
  readonly id: string;
}

/**
 * A real client (SSE reader or `ws` socket) subscribed to one presence topic as user `user`,
 * counting the joins and leaves it receives, per member user.
 */
export class PresenceClient {
  private constructor(
    readonly transport: 'sse' | 'ws',
    readonly user: string,
    private readonly sse: SseClient | undefined,
    private readonly ws: WsClient | undefined,
  ) {}

  static async open(endpoint: Endpoint, transport: 'sse' | 'ws', topic: string, user: string): Promise<PresenceClient> {
    const query = `topic=${encodeURIComponent(topic)}&user=${encodeURIComponent(user)}`;
    if (transport === 'sse') {
      const client = await SseClient.open(`${endpoint.url}/events?${query}`);
      if (client.status !== 200) throw new Error(`SSE answered ${client.status}: ${client.body}`);
      await client.waitForEvents(1, 5_000, 'pushlet:connected');
      return new PresenceClient('sse', user, client, undefined);
    }
    const client = await WsClient.open(`${endpoint.wsUrl}/ws?${query}`);
    await client.waitForEvents('pushlet:connected');
    return new PresenceClient('ws', user, undefined, client);
  }

  /** The WebSocket client (for commands); throws on SSE. */
  get socket(): WsClient {
    if (!this.ws) throw new Error('not a WebSocket client');
    return this.ws;
  }

  /** Every frame with an event and a string data, in arrival order. */
  private get frames(): Array<{ event: string; data: string; id: string }> {
    if (this.sse) return this.sse.events.map((e) => ({ event: e.event, data: e.data, id: e.id ?? '' }));
    return this.ws!.received.map((m) => ({ event: String(m.event), data: String(m.data), id: String(m.id ?? '') }));
  }

  /** Joins and leaves received, in order. */
  get presence(): SeenPresence[] {
    return this.frames
      .filter((f) => f.event === 'pushlet:join' || f.event === 'pushlet:leave')
      .map((f) => ({ event: f.event as SeenPresence['event'], member: JSON.parse(f.data) as PresenceMember, id: f.id }));
  }

  joins(user: string): number {
    return this.presence.filter((p) => p.event === 'pushlet:join' && p.member.identity?.id === user).length;
  }

  leaves(user: string): number {
    return this.presence.filter((p) => p.event === 'pushlet:leave' && p.member.identity?.id === user).length;
  }

  /** Messages (not `pushlet:*`) with `event`. */
  messages(event: string): Array<{ data: string }> {
    return this.frames.filter((f) => f.event === event);
  }

  async waitUntil(check: () => boolean, ms: number, what: string): Promise<void> {
    if (this.sse) await this.sse.waitFor(check, ms, `${this.describe()}: ${what}`);
    else await this.ws!.waitFor(() => check(), ms, `${this.describe()}: ${what}`);
  }

  describe(): string {
    return `${this.transport} client of ${this.user}`;
  }

  close(): void {
    this.sse?.close();
    this.ws?.close();
  }
}
