import type { LoggerService } from '@nestjs/common';
import {
  connect,
  consumerOpts,
  JSONCodec,
  type ConnectionOptions,
  type JetStreamSubscription,
  type JsMsg,
  type JetStreamClient,
  type JetStreamManager,
  type Msg,
  type NatsConnection,
  type StoredMsg,
  type StreamConfig,
  type StreamInfo,
  type Subscription,
} from 'nats';
import type {
  BrokerEvents,
  BrokerPatterns,
  BrokerPublication,
  BrokerRecord,
  PushletBroker,
  PushletControlCommand,
  TailRequest,
  TopicRead,
  TopicsAfter,
} from '../interfaces/broker.interface.js';
import { encodeControl, parseControl } from '../core/control.js';
import { PushletBrokerError } from '../core/errors.js';
import { comparePositions, type Position } from '../protocol/ids.js';
import { NatsPresenceStore } from './nats-presence.js';
import { NatsSubjects } from './nats-subjects.js';

/** {@link NatsBrokerOptions} with defaults filled in. */
export interface ResolvedNatsOptions {
  readonly servers: string[];
  readonly stream: string;
  readonly subjectPrefix: string;
  readonly storage: 'file' | 'memory';
  readonly replicas: number;
  readonly duplicateWindowMs: number;
  readonly presenceBucket: string;
  readonly startWithoutNats: boolean;
  readonly connectTimeoutMs: number;
  readonly commandTimeoutMs: number;
  readonly maxQueued: number;
  readonly connection: Partial<ConnectionOptions>;
}

export interface NatsHistoryLimits {
  readonly maxCount: number;
  readonly maxAgeMs: number;
}

/** Errors of the NATS broker (not the client's fault). */
export class PushletNatsError extends PushletBrokerError {}

/** A call whose outcome is unknown (the link dropped, or the answer came from another stream): sent again later. */
class NatsTransientError extends PushletNatsError {}

const codec = JSONCodec<[event: string, data: string, time: number]>();
const NOT_FOUND = 404;
/** Between attempts to connect (first connection and reconnections). */
const RETRY_MS = 250;

/**
 * The NATS JetStream broker: one stream for the deployment holds every topic's history (a subject
 * per topic, `max_msgs_per_subject` and `max_age` from the history limits) and orders every topic
 * (`ordering: 'total'`). Each instance reads the stream live through one ordered push consumer
 * (no acknowledgements, flow control, started after the last sequence when the link was
 * prepared): every record once, in stream order, with its position; the recovery core keeps those
 * of the topics and patterns it serves.
 *
 * Why not the stream's `republish` onto plain subjects, which would route by interest: a
 * republished message leaves the server after it is stored, from the publishing connection's
 * own goroutine, so two publications stored as 1036 and 1037 may reach a subscriber as 1037 then
 * 1036 (measured on 2.9.10: 130 inversions in 60,000 messages from 3 publishing connections).
 * Positions ordered across topics mean one id resumes a connection: a connection that had 1037
 * and not yet 1036 would resume after 1036 and lose it. A consumer delivers in sequence order.
 * Server 2.9 gives a consumer one filter subject, so every instance receives every publication
 * (2.10's `filter_subjects` could route by interest; not used, CI runs 2.9).
 *
 * An adapter, like every broker: what an instance does through a lost link is the recovery
 * core's (`core/recovery-core.ts`).
 *
 * A position is `{ ms: the stream's creation (ms), seq: the stream sequence }`: ordered across
 * topics, and a stream created again (a server that lost its data, an operator's delete) starts
 * after every position of the old one, so its floor tells a reset from an exact resume.
 */
export class NatsBroker implements PushletBroker {
  readonly ordering = 'total';
  /** Positions are `{ stream creation, stream sequence }`, not times. */
  readonly clock = 'sequence';
  readonly description: string;
  readonly maxQueued: number;
  readonly startWithoutBackend: boolean;
  readonly batching = true;
  readonly subjects: NatsSubjects;
  readonly patterns: BrokerPatterns;
  private nc: NatsConnection | undefined;
  private js: JetStreamClient | undefined;
  private jsm: JetStreamManager | undefined;
  private connecting: Promise<NatsConnection> | undefined;
  private events: BrokerEvents | undefined;
  private connected = false;
  private stopped = false;
  /** Counts lost links: an answer from before a loss is not trusted (the stream may be another one now). */
  private generation = 0;
  /** The stream's creation (ms), the `ms` of every position it hands out; 0 until prepared. */
  private epoch = 0;
  /** The ordered consumer that reads the stream live (one per preparation of the link), and its token. */
  private live: JetStreamSubscription | undefined;
  private liveToken: object | undefined;
  private controlSubscription: Subscription | undefined;
  private lastError: string | undefined;
  /** The last sequence received live (they come in stream order); 0 after each `prepare`. */
  private lastLive = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private wakeRetry: (() => void) | undefined;
  private presence: NatsPresenceStore | undefined;
  /** The subjects of the topics this instance watches, and its patterns (any: every record is decoded and the core matches). */
  private readonly watchedSubjects = new Set<string>();
  private readonly watchedPatterns = new Set<string>();

  constructor(
    private readonly options: ResolvedNatsOptions,
    private readonly limits: NatsHistoryLimits,
    private readonly logger: LoggerService,
  ) {
    this.subjects = new NatsSubjects(options.subjectPrefix);
    this.description = `NATS JetStream at ${options.servers.join(',')} (stream ${options.stream})`;
    this.maxQueued = options.maxQueued;
    this.startWithoutBackend = options.startWithoutNats;
    // Every record reaches every instance (see above): subscribing only says which to decode.
    this.patterns = {
      subscribe: async (patterns) => void patterns.forEach((pattern) => this.watchedPatterns.add(pattern)),
      unsubscribe: (patterns) => void patterns.forEach((pattern) => this.watchedPatterns.delete(pattern)),
      topicsAfter: (after, patterns) => this.topicsAfter(after, patterns),
    };
  }

  /** @throws PushletNatsError when NATS cannot be reached in time (the core starts without it when `startWithoutNats`). */
  async start(events: BrokerEvents): Promise<void> {
    this.events = events;
    this.connecting = this.connectLoop();
    this.connecting.then(
      (nc) => this.connectedFirst(nc),
      () => undefined,
    );
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new PushletNatsError(
              `cannot connect to ${this.description} within ${this.options.connectTimeoutMs} ms${this.lastError ? ` (${this.lastError})` : ''}`,
            ),
          ),
        this.options.connectTimeoutMs,
      );
    });
    try {
      await Promise.race([this.connecting, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Connects, trying again every {@link RETRY_MS} until it does or the broker stops (then it rejects). */
  private async connectLoop(): Promise<NatsConnection> {
    for (;;) {
      if (this.stopped) throw new PushletNatsError('stopped');
      try {
        return await connect({
          reconnect: true,
          maxReconnectAttempts: -1,
          reconnectTimeWait: RETRY_MS,
          pingInterval: 5_000,
          maxPingOut: 2,
          // Without it, every request and JetStream publish captures two stack traces for errors it
          // may never raise: about half of a publishing instance's CPU (measured in `npm run bench`).
          noAsyncTraces: true,
          ...this.options.connection,
          servers: this.options.servers,
          timeout: this.options.connectTimeoutMs,
        });
      } catch (error) {
        this.lastError = error instanceof Error ? error.message : String(error);
        await new Promise<void>((resolve) => {
          this.retryTimer = setTimeout(resolve, RETRY_MS);
          this.retryTimer.unref();
          this.wakeRetry = resolve;
        });
      }
    }
  }

  private connectedFirst(nc: NatsConnection): void {
    if (this.stopped) {
      nc.close().catch(() => undefined);
      return;
    }
    this.nc = nc;
    const timeout = this.options.commandTimeoutMs;
    this.js = nc.jetstream({ timeout });
    this.connected = true;
    void (async () => {
      for await (const status of nc.status()) {
        if (status.type === 'disconnect') {
          this.connected = false;
          this.generation += 1;
          // Whatever the old consumer says after the link is back, recovery reads it; prepare starts a new one.
          this.dropLive();
          this.events?.down();
        } else if (status.type === 'reconnect') {
          this.connected = true;
          this.events?.up();
        }
      }
    })().catch(() => undefined);
    nc.closed().then(() => {
      this.connected = false;
      if (!this.stopped) this.events?.down();
    });
    this.events?.up();
  }

  isConnected(): boolean {
    return !this.stopped && this.connected;
  }

  /**
   * After every (re)connection: the stream exists with the history limits (created if missing,
   * e.g. on a server that lost its data), its creation is the positions' `ms`; the live consumer
   * starts after the stream's last sequence (the core reads what came before); the control
   * subject is subscribed; presence finds its bucket again.
   */
  async prepare(): Promise<void> {
    const nc = this.connection();
    this.jsm = await nc.jetstreamManager({ timeout: this.options.commandTimeoutMs, checkAPI: false });
    const info = await this.ensureStream(this.jsm);
    this.setEpoch(info, true);
    await this.followFrom(info.state.last_seq + 1);
    this.controlSubscription ??= nc.subscribe(this.subjects.control, { callback: (error, msg) => error || this.onControl(msg) });
    this.presence?.reset();
    await nc.flush();
  }

  /** Replaces the live consumer with one that delivers every record from sequence `start` on. */
  private async followFrom(start: number): Promise<void> {
    this.dropLive();
    this.lastLive = start - 1;
    const generation = this.generation;
    // Records may arrive before `subscribe` resolves: the token, not the subscription, says which consumer is current.
    const token = (this.liveToken = {});
    const options = consumerOpts();
    options.orderedConsumer();
    options.startSequence(start);
    options.callback((error, msg) => {
      if (this.liveToken !== token) return;
      if (msg) this.onLive(msg);
      else if (error) this.logger.debug?.(`NATS live consumer: ${error.message}`);
    });
    const subscription = await withTimeout(this.js!.subscribe(this.subjects.history, options), this.options.commandTimeoutMs, 'the live consumer');
    if (generation !== this.generation || this.stopped || this.liveToken !== token) {
      subscription.unsubscribe();
      throw new NatsTransientError('the link to NATS was lost while the live consumer started');
    }
    this.live = subscription;
    // A consumer that ends by itself (deleted with its stream, the connection closed): recover.
    void subscription.closed.then(() => {
      if (this.liveToken !== token || this.stopped) return;
      this.dropLive();
      this.generation += 1;
      this.events?.down();
    });
  }

  /** Stops reading the stream live (a lost link, or a new consumer to come). */
  private dropLive(): void {
    this.liveToken = undefined;
    const live = this.live;
    this.live = undefined;
    live?.unsubscribe();
  }

  private async ensureStream(jsm: JetStreamManager): Promise<StreamInfo> {
    const wanted: Partial<StreamConfig> = {
      name: this.options.stream,
      subjects: [this.subjects.history],
      max_msgs_per_subject: this.limits.maxCount,
      max_age: this.limits.maxAgeMs * 1_000_000,
      duplicate_window: Math.min(this.options.duplicateWindowMs, this.limits.maxAgeMs) * 1_000_000,
      storage: this.options.storage === 'memory' ? ('memory' as StreamConfig['storage']) : ('file' as StreamConfig['storage']),
      num_replicas: this.options.replicas,
    };
    let info: StreamInfo;
    try {
      info = await jsm.streams.info(this.options.stream);
    } catch (error) {
      if (errorCode(error) !== NOT_FOUND) throw error;
      try {
        return await jsm.streams.add(wanted);
      } catch (addError) {
        // Another instance created it first: use it.
        info = await jsm.streams.info(this.options.stream).catch(() => Promise.reject(addError));
      }
    }
    const config = info.config;
    if (config.max_msgs_per_subject !== wanted.max_msgs_per_subject || config.max_age !== wanted.max_age) {
      this.logger.warn(
        `stream ${this.options.stream} kept ${config.max_msgs_per_subject} messages per topic for ${config.max_age / 1e6} ms; now ${wanted.max_msgs_per_subject} for ${this.limits.maxAgeMs} ms (instances should agree on the history option)`,
      );
      info = await jsm.streams.update(this.options.stream, { ...config, max_msgs_per_subject: wanted.max_msgs_per_subject, max_age: wanted.max_age });
    }
    return info;
  }

  /**
   * The stream's creation, the `ms` of its positions. Outside `prepare`, a stream created again
   * under a live link (an operator's delete) sends the link down: recovery reads the new one.
   */
  private setEpoch(info: StreamInfo, preparing = false): number {
    const created = Date.parse(info.created);
    if (!Number.isSafeInteger(created)) throw new PushletNatsError(`stream ${this.options.stream} has an unreadable creation time: ${info.created}`);
    if (this.epoch !== 0 && created !== this.epoch) {
      this.logger.warn(`stream ${this.options.stream} is new (its history was lost): clients resuming from before are told pushlet:reset`);
      this.epoch = created;
      if (!preparing) {
        this.generation += 1;
        this.events?.down();
        throw new NatsTransientError(`stream ${this.options.stream} changed`);
      }
    }
    this.epoch = created;
    return created;
  }

  append(publications: readonly BrokerPublication[]): Array<Promise<Position>> {
    return publications.map((publication) => this.appendOne(publication));
  }

  private async appendOne({ topic, event, data, origin, counter }: BrokerPublication): Promise<Position> {
    const generation = this.generation;
    const epoch = this.epoch;
    const js = this.js;
    if (!js || !this.connected || epoch === 0) throw new NatsTransientError(`${this.description} is not connected`);
    const ack = await js.publish(this.subjects.topic(topic), codec.encode([event, data, Date.now()]), {
      msgID: `${origin}:${counter}`,
      expect: { streamName: this.options.stream },
      timeout: this.options.commandTimeoutMs,
    });
    // An answer from before a lost link may come from a stream created since: unknown, sent again.
    if (generation !== this.generation || epoch !== this.epoch) throw new NatsTransientError('the link to NATS was lost before the answer');
    return { ms: epoch, seq: ack.seq };
  }

  /** Every record reaches this instance already (see the class): these say which are decoded and handed to the core. */
  async subscribe(topics: readonly string[]): Promise<void> {
    for (const topic of topics) this.watchedSubjects.add(this.subjects.topic(topic));
  }

  unsubscribe(topics: readonly string[]): void {
    for (const topic of topics) this.watchedSubjects.delete(this.subjects.topic(topic));
  }

  /** A record from the live consumer: in stream order, each once (the ordered consumer restarts itself after a gap). */
  private onLive(msg: JsMsg): void {
    const seq = msg.info.streamSequence;
    if (this.epoch === 0) return;
    // Sequences going back: a stream created again under a live link (an operator's delete). Down: recovery reads it.
    if (seq <= this.lastLive) {
      this.logger.warn(`stream ${this.options.stream} went back to sequence ${seq} (after ${this.lastLive}): reading it again`);
      this.lastLive = Number.MAX_SAFE_INTEGER;
      this.generation += 1;
      this.events?.down();
      return;
    }
    this.lastLive = seq;
    // Not watched here: not decoded (the core would drop it).
    if (this.watchedPatterns.size === 0 && !this.watchedSubjects.has(msg.subject)) return;
    const record = this.record(msg.subject, seq, msg.data, msg.headers?.get('Nats-Msg-Id') || undefined);
    if (record) this.events?.records([record]);
  }

  private record(subject: string, seq: number, body: Uint8Array, msgId: string | undefined): BrokerRecord | undefined {
    const topic = this.subjects.topicOf(subject);
    if (topic === undefined) return undefined;
    let decoded: [string, string, number];
    try {
      decoded = codec.decode(body);
    } catch {
      return undefined;
    }
    const [event, data, time] = decoded;
    if (typeof event !== 'string' || typeof data !== 'string') return undefined;
    const colon = msgId ? msgId.lastIndexOf(':') : -1;
    const counter = colon > 0 ? Number(msgId!.slice(colon + 1)) : Number.NaN;
    return {
      position: { ms: this.epoch, seq },
      topic,
      event,
      data,
      ...(Number.isSafeInteger(counter) ? { origin: msgId!.slice(0, colon), counter } : {}),
      ...(typeof time === 'number' && Number.isFinite(time) ? { time } : {}),
    };
  }

  /** The stream's state now, its creation checked against the positions handed out. */
  private async state(): Promise<{ epoch: number; first: number; last: number }> {
    const info = await this.manager().streams.info(this.options.stream);
    const epoch = this.setEpoch(info);
    return { epoch, first: info.state.first_seq, last: info.state.last_seq };
  }

  /**
   * Each topic's records after its position, read one by one by subject (`next_by_subj`) up to
   * the stream's last sequence when the read began. The floor: the stream's first sequence (age,
   * purges), or, when a topic holds its whole `maxCount` after the position, its oldest record
   * (older ones of it may have been trimmed).
   */
  async read(requests: ReadonlyArray<{ readonly topic: string; readonly after: Position }>): Promise<TopicRead[]> {
    if (requests.length === 0) return [];
    const { epoch, first, last } = await this.state();
    const readAt = { ms: epoch, seq: last };
    const streamFloor = { ms: epoch, seq: Math.max(0, first - 1) };
    return Promise.all(
      requests.map(async ({ topic, after }) => {
        if (comparePositions(after, readAt) > 0) return { topic, records: [], floor: streamFloor, readAt, limit: readAt };
        const records = await this.readTopic(topic, after.ms === epoch ? after.seq + 1 : 1, last);
        const trimmed = records.length >= this.limits.maxCount ? { ms: epoch, seq: records[0]!.position.seq - 1 } : streamFloor;
        const floor = comparePositions(trimmed, streamFloor) > 0 ? trimmed : streamFloor;
        return { topic, records, floor, readAt, limit: readAt };
      }),
    );
  }

  private async readTopic(topic: string, from: number, last: number): Promise<BrokerRecord[]> {
    const jsm = this.manager();
    const subject = this.subjects.topic(topic);
    const records: BrokerRecord[] = [];
    for (let seq = Math.max(1, from); seq <= last;) {
      let msg: StoredMsg;
      try {
        msg = await jsm.streams.getMessage(this.options.stream, { next_by_subj: subject, seq } as unknown as { seq: number });
      } catch (error) {
        if (errorCode(error) === NOT_FOUND) break;
        throw error;
      }
      if (msg.seq > last) break;
      const record = this.record(msg.subject, msg.seq, msg.data, msg.header.get('Nats-Msg-Id') || undefined);
      if (record) records.push(record);
      seq = msg.seq + 1;
    }
    return records;
  }

  /**
   * Each topic's newest records (at most `limit`, strictly before `before`), oldest first. With no
   * way back by subject on the server this targets (2.9), a topic's kept records (at most
   * `maxCount`) are read forward from the stream's first sequence and the newest kept.
   */
  async tail(requests: readonly TailRequest[]): Promise<BrokerRecord[][]> {
    if (requests.length === 0) return [];
    const { epoch, first, last } = await this.state();
    return Promise.all(
      requests.map(async ({ topic, limit, before }) => {
        if (before && before.ms < epoch) return [];
        const until = before && before.ms === epoch ? Math.min(last, before.seq - 1) : last;
        const records = await this.readTopic(topic, first, until);
        return records.slice(Math.max(0, records.length - limit));
      }),
    );
  }

  /** Every topic's position now: the stream's last sequence (positions ordered across topics). */
  async positions(topics: readonly string[]): Promise<Position[]> {
    const { epoch, last } = await this.state();
    return topics.map(() => ({ ms: epoch, seq: last }));
  }

  /** The topics the patterns' subjects hold in the stream (all of them, whatever their age: the core reads and filters). */
  private async topicsAfter(after: Position, patterns: readonly string[]): Promise<TopicsAfter> {
    const filters = [...new Set(patterns.flatMap((pattern) => this.subjects.pattern(pattern)))];
    const jsm = this.manager();
    const infos = await Promise.all(filters.map((subjects_filter) => jsm.streams.info(this.options.stream, { subjects_filter })));
    const epoch = this.setEpoch(infos[0]!);
    const topics = new Set<string>();
    let first = 0;
    let last = Number.MAX_SAFE_INTEGER;
    for (const info of infos) {
      if (Date.parse(info.created) !== epoch) throw new NatsTransientError(`stream ${this.options.stream} changed`);
      first = Math.max(first, info.state.first_seq);
      last = Math.min(last, info.state.last_seq);
      for (const subject of Object.keys(info.state.subjects ?? {})) {
        const topic = this.subjects.topicOf(subject);
        if (topic !== undefined) topics.add(topic);
      }
    }
    const readAt = { ms: epoch, seq: last };
    void after;
    return { topics: [...topics], floor: { ms: epoch, seq: Math.max(0, first - 1) }, readAt, limit: readAt };
  }

  /** Timeouts and lost links are transient; a refusal of the stream (a wrong stream name, a limit) is not. */
  unreachable(error: unknown): boolean {
    if (error instanceof NatsTransientError) return true;
    const code = errorCode(error);
    return code === undefined || code === 503 || code === 408 || /TIMEOUT|DISCONNECT|CONNECTION|NO_RESPONDERS|CLOSED/i.test(String(code));
  }

  /** Sends an instance-wide command on the control subject (plain NATS: live only, every instance, this one included). */
  async control(command: PushletControlCommand): Promise<void> {
    const nc = this.connection();
    nc.publish(this.subjects.control, encodeControl(command));
    await withTimeout(nc.flush(), this.options.commandTimeoutMs, 'a control command');
  }

  private onControl(msg: Msg): void {
    const payload = msg.string();
    const command = parseControl(payload);
    if (!command) {
      this.logger.warn(`ignored a malformed message of ${payload.length} characters on the control subject ${this.subjects.control}`);
      return;
    }
    this.events?.control(command);
  }

  /** Presence in a JetStream key-value bucket shared by every instance on this NATS. */
  presenceStore(ttlMs: number, onAvailable: (listener: () => void) => () => void): NatsPresenceStore {
    this.presence = new NatsPresenceStore(
      () => this.connection(),
      this.options.presenceBucket,
      this.options.storage,
      ttlMs,
      this.options.commandTimeoutMs,
      onAvailable,
    );
    return this.presence;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.events = undefined;
    clearTimeout(this.retryTimer);
    this.wakeRetry?.();
    // Every publication has its answer or has failed by now (the core settled them): close, never
    // drain (a drain waits for a server that may be gone).
    await this.nc?.close().catch(() => undefined);
  }

  private connection(): NatsConnection {
    if (!this.nc || this.stopped) throw new NatsTransientError(`${this.description} is not connected`);
    return this.nc;
  }

  private manager(): JetStreamManager {
    if (!this.jsm) throw new NatsTransientError(`${this.description} is not prepared`);
    return this.jsm;
  }
}

function errorCode(error: unknown): number | string | undefined {
  if (!error || typeof error !== 'object') return undefined;
  const api = (error as { api_error?: { code?: number } }).api_error;
  if (api?.code !== undefined) return api.code;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'number') return code;
  if (typeof code === 'string') return /^\d+$/.test(code) ? Number(code) : code;
  return undefined;
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new NatsTransientError(`NATS did not answer ${what} within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
