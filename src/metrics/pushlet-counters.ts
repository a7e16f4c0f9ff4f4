import { performance } from 'node:perf_hooks';
import type { CoreCounters, MeteredListeners, PushletRefusalReason } from '../core/counters.js';
import type { Envelope } from '../core/envelope.js';
import type { PublishOrigin } from '../core/publisher.js';
import type { PushletTransport } from '../protocol/frames.js';
import { PUSHLET_REFUSAL_REASONS } from '../core/counters.js';

export { PUSHLET_REFUSAL_REASONS, type DeliveryMeter, type MeteredListeners, type PushletRefusalReason } from '../core/counters.js';

/**
 * What one instance counts, in plain numbers: `PushletService.stats()` reads them, and the
 * Prometheus metrics of `pushlet-nestjs/metrics` are a view of `stats()` taken on each scrape.
 * Nothing here imports prom-client, and nothing is counted per subscriber and message: a
 * fan-out is counted once per message, with the number of subscribers of each kind.
 */

/** Where a publication came from: the server's own code (`PushletService`) or a client's publish command. */
export type PushletPublishOrigin = PublishOrigin;

/**
 * Timings the module reports as they happen, for histograms of your own (the Prometheus ones of
 * `pushlet-nestjs/metrics` use this). Both are called once per message, never per subscriber;
 * keep them cheap.
 */
export interface PushletObserver {
  /** A publication made on this instance was acknowledged by the broker, `seconds` after the publish call. */
  published?(seconds: number, origin: PushletPublishOrigin): void;
  /** A message reached this instance's subscribers, `seconds` after its timestamp (its publication, on any instance). */
  delivered?(seconds: number): void;
}

export interface PerTransport {
  sse: number;
  ws: number;
}

export class PushletCounters implements CoreCounters {
  /** Publications acknowledged by the broker, by origin. */
  readonly published = { server: 0, client: 0 };
  /** Messages handed to connections, live (fan-out), by transport. */
  readonly deliveries: PerTransport = { sse: 0, ws: 0 };
  /** Bytes of those messages' frames, by transport. */
  readonly bytesSent: PerTransport = { sse: 0, ws: 0 };
  /** Connections cut off for reading too slowly, by transport. */
  readonly slowConsumers: PerTransport = { sse: 0, ws: 0 };
  /** Resumes (a start or subscribe with a last event id): exact, or told `pushlet:reset`. */
  readonly resumes = { recovered: 0, reset: 0 };
  /** Messages replayed from history to resuming connections. */
  replayed = 0;
  readonly refused = Object.fromEntries(PUSHLET_REFUSAL_REASONS.map((reason) => [reason, 0])) as Record<PushletRefusalReason, number>;
  private readonly observers = new Set<PushletObserver>();

  /** Adds an observer of timings; returns the function that removes it. Adding one twice adds it once. */
  observe(observer: PushletObserver): () => void {
    this.observers.add(observer);
    return () => this.observers.delete(observer);
  }

  /** Call when a publication starts: a start time to hand to {@link acknowledged} (0 when nobody times it). */
  publishing(): number {
    return this.observers.size > 0 ? performance.now() : 0;
  }

  /** The broker acknowledged a publication started at `started` (from {@link publishing}). */
  acknowledged(origin: PushletPublishOrigin, started: number): void {
    this.published[origin] += 1;
    if (started === 0 || this.observers.size === 0) return;
    const seconds = (performance.now() - started) / 1000;
    for (const observer of this.observers) observer.published?.(seconds, origin);
  }

  /**
   * One message went out to a topic's local subscribers: `kinds` holds how many there are of
   * each kind. Once per message, whatever the number of subscribers.
   */
  fannedOut(envelope: Envelope, kinds: readonly MeteredListeners[]): void {
    for (let i = 0; i < kinds.length; i++) {
      const { meter, count } = kinds[i]!;
      this.deliveries[meter.transport] += count;
      this.bytesSent[meter.transport] += count * meter.frameBytes(envelope);
    }
    if (this.observers.size === 0) return;
    // The broker's clock stamped the message; a clock behind it must not give a negative lag.
    const seconds = Math.max(0, Date.now() - envelope.time) / 1000;
    for (const observer of this.observers) observer.delivered?.(seconds);
  }

  slowConsumer(transport: PushletTransport): void {
    this.slowConsumers[transport] += 1;
  }

  /** A resume was answered: exactly (`reset` false), or with a `pushlet:reset` for some topics. */
  resumed(reset: boolean, replayed: number): void {
    if (reset) this.resumes.reset += 1;
    else this.resumes.recovered += 1;
    this.replayed += replayed;
  }

  refusal(reason: PushletRefusalReason): void {
    this.refused[reason] += 1;
  }

  /** The counts as `stats()` reports them (copies: later counting does not change them). */
  stats() {
    const { server, client } = this.published;
    return {
      published: server + client,
      publishedBy: { server, client },
      deliveries: figures(this.deliveries),
      bytesSent: figures(this.bytesSent),
      slowConsumersDisconnected: this.slowConsumers.sse + this.slowConsumers.ws,
      slowConsumers: figures(this.slowConsumers),
      resumes: { ...this.resumes },
      replayed: this.replayed,
      refused: { ...this.refused },
    };
  }
}

function figures({ sse, ws }: PerTransport) {
  return { sse, ws, total: sse + ws };
}
