import http from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Endpoint } from './chaos-client.js';

/** What became of one publication, as far as the publisher can tell. */
export type Fate = 'pending' | 'acknowledged' | 'unknown';

export interface Publication {
  readonly topic: string;
  readonly seq: number;
  readonly instance: string;
  /** When the request was sent (performance.now()). */
  readonly startedAt: number;
  fate: Fate;
  settledAt: number;
  /** Why the fate is unknown (status, error or timeout). */
  failure?: string;
}

export interface PublisherOptions {
  readonly topics: readonly string[];
  /** Live instances to publish through (one is picked at random per message). */
  readonly endpoints: () => readonly Endpoint[];
  readonly random: () => number;
  /** Pause between the answer to one publication and the next of the same topic. */
  readonly gapMs: readonly [number, number];
  readonly requestTimeoutMs: number;
}

/**
 * Publishes `{topic, seq}` through `GET /send` on random instances: per topic one at a time
 * (seq n+1 is sent only once n was answered or failed), every topic in parallel. A request that
 * fails or times out has an unknown fate; the next one takes the next seq.
 */
export class Publisher {
  readonly publications = new Map<string, Publication[]>();
  private running = false;
  private loops: Promise<void>[] = [];

  constructor(private readonly options: PublisherOptions) {
    for (const topic of options.topics) this.publications.set(topic, []);
  }

  start(): void {
    this.running = true;
    this.loops = this.options.topics.map((topic) => this.run(topic));
  }

  /** Stops sending; resolves once every request in flight has settled (bounded by the request timeout). */
  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  /** The highest acknowledged seq of `topic` (0 if none). */
  lastAcknowledged(topic: string): number {
    const list = this.publications.get(topic) ?? [];
    for (let i = list.length - 1; i >= 0; i--) if (list[i]!.fate === 'acknowledged') return list[i]!.seq;
    return 0;
  }

  /** Seq -> publication of `topic` (seq n is at index n - 1). */
  of(topic: string, seq: number): Publication | undefined {
    return this.publications.get(topic)?.[seq - 1];
  }

  get counts(): { published: number; acknowledged: number; unknown: number } {
    let published = 0;
    let acknowledged = 0;
    let unknown = 0;
    for (const list of this.publications.values()) {
      for (const p of list) {
        published += 1;
        if (p.fate === 'acknowledged') acknowledged += 1;
        else if (p.fate === 'unknown') unknown += 1;
      }
    }
    return { published, acknowledged, unknown };
  }

  private async run(topic: string): Promise<void> {
    const list = this.publications.get(topic)!;
    const [minGap, maxGap] = this.options.gapMs;
    while (this.running) {
      const endpoints = this.options.endpoints();
      if (endpoints.length === 0) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        continue;
      }
      const endpoint = endpoints[Math.floor(this.options.random() * endpoints.length)]!;
      const seq = list.length + 1;
      const publication: Publication = { topic, seq, instance: endpoint.name, startedAt: performance.now(), fate: 'pending', settledAt: 0 };
      list.push(publication);
      const message = JSON.stringify({ topic, seq });
      const url = `${endpoint.url}/send?topic=${encodeURIComponent(topic)}&message=${encodeURIComponent(message)}`;
      const outcome = await send(url, this.options.requestTimeoutMs);
      publication.settledAt = performance.now();
      if (outcome === 200) publication.fate = 'acknowledged';
      else {
        publication.fate = 'unknown';
        publication.failure = String(outcome);
      }
      await new Promise((resolve) => setTimeout(resolve, minGap + this.options.random() * (maxGap - minGap)));
    }
  }
}

/** One GET on a fresh connection: the status, or what went wrong (bounded by `timeoutMs` in all). */
function send(url: string, timeoutMs: number): Promise<number | string> {
  return new Promise((resolve) => {
    let settled = false;
    const settle = (outcome: number | string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(outcome);
    };
    const request = http.get(url, { agent: false }, (response) => {
      response.resume();
      response.on('end', () => settle(response.statusCode ?? 0));
      response.on('error', (error) => settle(`response error: ${error.message}`));
      response.on('close', () => settle(`response closed early (status ${response.statusCode})`));
    });
    request.on('error', (error) => settle(error.message));
    const timer = setTimeout(() => {
      settle(`no answer within ${timeoutMs} ms`);
      request.destroy();
    }, timeoutMs);
  });
}
