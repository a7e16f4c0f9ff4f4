import { performance } from 'node:perf_hooks';
import type { ChaosClient, ClientRecord, ConnectionInfo } from './chaos-client.js';
import { PROTOCOL_TEXTS } from '../../../src/protocol/texts.js';
import type { Publisher } from './publisher.js';
import { parseResumeId, topicHash, type Position } from '../../../src/protocol/ids.js';

/** Redis history that was truly lost: a server (or a cluster master) killed and restarted empty. */
export interface HistoryLoss {
  readonly what: string;
  /** Topics whose history lived there. */
  readonly topics: ReadonlySet<string>;
  readonly killedAt: number;
  /** When it answered again (Infinity while it has not). */
  restartedAt: number;
  /**
   * Redis's clock (this machine's wall clock, ms) just before the server was started again
   * (Infinity until then): every id it stamped before the loss is older, and every id, horizon
   * or position it hands out afterwards is not. Unset: judge by receipt times alone.
   */
  clockAtRestart?: number;
}

/** A stretch of the run with one kind of fault, for telling where a reset was seen. */
export interface Phase {
  readonly name: string;
  readonly from: number;
  to: number;
}

export type FindingKind = 'duplicate' | 'out-of-order' | 'order-disagreement' | 'silent-gap' | 'unjustified-reset' | 'not-caught-up' | 'odd-frame';

export interface Finding {
  readonly kind: FindingKind;
  readonly text: string;
  /** The transport of the client it concerns (none for a disagreement between clients). */
  readonly transport?: string;
}

export interface Verdict {
  readonly findings: Finding[];
  readonly counts: Record<FindingKind, number>;
  readonly deliveries: number;
  readonly resets: number;
  readonly resetsByPhase: Record<string, number>;
  readonly resetsByTransport: Record<string, number>;
  readonly reconnects: number;
}

type MessageRecord = Extract<ClientRecord, { kind: 'message' }>;
type ResetRecord = Extract<ClientRecord, { kind: 'reset' }>;

/**
 * Checks what every client received against what was published: per client and topic, no seq
 * twice, no acknowledged seq after a later one, no acknowledged seq missing without a
 * `pushlet:reset` naming the topic in between, every client caught up with the last acknowledged
 * seq, and no reset where no history was lost.
 */
export function judge(
  clients: readonly ChaosClient[],
  publisher: Publisher,
  losses: readonly HistoryLoss[],
  phases: readonly Phase[],
  /** `CHAOS_DEBUG`: what was probed at each reset; also turns on the details of unjustified ones. */
  explain?: ReadonlyMap<unknown, string>,
): Verdict {
  const findings: Finding[] = [];
  let transport: string | undefined;
  const add = (kind: FindingKind, text: string) => findings.push({ kind, text, transport });
  const phaseAt = (at: number) => phases.find((p) => at >= p.from && at < p.to)?.name ?? (at < (phases[0]?.from ?? 0) ? 'start' : 'settle');
  let deliveries = 0;
  let resets = 0;
  const resetsByPhase: Record<string, number> = {};
  const resetsByTransport: Record<string, number> = { sse: 0, ws: 0 };

  for (const client of clients) {
    transport = client.transport;
    const who = `${client.name} (${client.transport}, topics ${client.topics.join(',')})`;
    const firstConnected = client.records.find((r) => r.kind === 'connected')?.at ?? Infinity;
    for (const record of client.records) {
      if (record.kind === 'message') deliveries += 1;
      if (record.kind === 'odd') add('odd-frame', `${who} conn ${record.conn}: ${record.what}`);
      if (record.kind !== 'reset') continue;
      resets += 1;
      resetsByTransport[client.transport] = (resetsByTransport[client.transport] ?? 0) + 1;
      const phase = phaseAt(record.at);
      resetsByPhase[phase] = (resetsByPhase[phase] ?? 0) + 1;
      const info = client.connections.get(record.conn);
      // Every connection also holds broadcasts (`*`), which a reset may name.
      const named = record.topics.filter((t) => client.topics.includes(t) || t === '*');
      const unjustified = (named.length > 0 ? named : ['(none of its topics)']).filter(
        (topic) => !justified(record, topic === '(none of its topics)' ? undefined : topic, info, losses, client),
      );
      if (unjustified.length > 0) {
        add(
          'unjustified-reset',
          `${who}: pushlet:reset for ${unjustified.join(',')} (named ${JSON.stringify(record.topics)}, "${record.reason}") in phase "${phase}" ` +
            `on conn ${record.conn} to ${info?.instance ?? '?'} (resumed from ${info?.resumeId ?? 'nothing'}), but no history of it was lost before that` +
            (explain ? `\n      ${resetDetails(client, record, unjustified, info, losses, publisher, explain)}` : ''),
        );
      }
    }
    for (const topic of client.topics) judgeTopic(client, who, topic, firstConnected, publisher, add);
  }
  transport = undefined;
  judgeAgreement(clients, publisher, add);

  const counts = Object.fromEntries(
    (['duplicate', 'out-of-order', 'order-disagreement', 'silent-gap', 'unjustified-reset', 'not-caught-up', 'odd-frame'] as const).map((k) => [k, 0]),
  ) as Record<FindingKind, number>;
  for (const f of findings) counts[f.kind] += 1;
  const reconnects = clients.reduce((sum, c) => sum + Math.max(0, c.connections.size - 1), 0);
  return { findings, counts, deliveries, resets, resetsByPhase, resetsByTransport, reconnects };
}

/**
 * A reset of `topic` is justified when its history was lost (killed at or before the reset) and
 * the position the module judged predates the restart. Either of two tests says so:
 *
 * - by receipt times: what the client knew of the topic predates the restart: it resumed from an
 *   id obtained before, or the last message of the topic it got (or the last reset of it, or its
 *   first connection) came before. A resume id carries each topic's own position on a Cluster,
 *   so an id obtained after the restart can still hold an older position for a quiet topic
 *   (broadcasts, for one);
 * - by the position itself (see {@link judgedPosition}): it is the id of a message of the topic
 *   that the client received, so stamped by Redis, and Redis's clock was then older than the
 *   restart ({@link HistoryLoss.clockAtRestart}). Only a message's position counts: an estimate
 *   an instance hands out while Redis is unreachable is not a point in Redis's history.
 *
 * The second is needed because the first is wrong in two cases. (1) A reset in the middle of a
 * connection ("the broker lost messages") carries no id (README, Resume): the client's id keeps
 * the topic's old position until its next message, so a client that drops before one resumes
 * from before the loss and is rightly told `reset` again (too old), though its "last reset" of the
 * topic came after the restart. Seen on a Cluster under CPU load (a client resumed on an instance
 * that was recovering, was told the loss, and dropped 190 ms later). (2) A message stamped before
 * the loss can be read by a starved test process after the restart.
 */
function justified(
  record: ResetRecord,
  topic: string | undefined,
  info: ConnectionInfo | undefined,
  losses: readonly HistoryLoss[],
  client: ChaosClient,
): boolean {
  if (!info) return false;
  const known = topic === undefined ? info.baseline : Math.min(info.baseline, topicBaseline(client, topic, record.at));
  const lost = losses.filter((loss) => (topic === undefined || loss.topics.has(topic)) && loss.killedAt <= record.at);
  if (lost.some((loss) => known < loss.restartedAt)) return true;
  if (topic === undefined) return false;
  const position = judgedPosition(client, record, info, topic);
  if (!position || !lost.some((loss) => loss.clockAtRestart !== undefined && position.ms < loss.clockAtRestart)) return false;
  return client.records.some((r) => {
    if (r.kind !== 'message' || r.topic !== topic || r.at >= record.at) return false;
    const stamped = positionIn(r.id, topic);
    return stamped !== undefined && stamped.ms === position.ms && stamped.seq === position.seq;
  });
}

/**
 * The position of `topic` that the module found incomplete when it sent `record`: for a reset at
 * a resume ("too old" and the like), the one in the id the client resumed from; for a reset in the
 * middle of a connection (history lost), the one in the last id the connection gave before it
 * (its `pushlet:connected` id, or its last message's), which is where the connection stood.
 */
function judgedPosition(client: ChaosClient, record: ResetRecord, info: ConnectionInfo, topic: string): { ms: number; seq: number } | undefined {
  if (record.reason !== PROTOCOL_TEXTS.resetHistoryLost) return positionIn(info.resumeId, topic);
  let id = info.resumeId;
  for (const r of client.records) {
    if (r === record) break;
    if (r.conn === record.conn && (r.kind === 'connected' || r.kind === 'message') && r.id !== undefined) id = r.id;
  }
  return positionIn(id, topic);
}

/** When the client last learned where `topic` stands, before `at`. */
function topicBaseline(client: ChaosClient, topic: string, at: number): number {
  let known = client.records.find((r) => r.kind === 'connected')?.at ?? 0;
  for (const r of client.records) {
    if (r.at >= at) break;
    if ((r.kind === 'message' && r.topic === topic) || (r.kind === 'reset' && r.topics.includes(topic))) known = r.at;
  }
  return known;
}

function judgeTopic(
  client: ChaosClient,
  who: string,
  topic: string,
  firstConnected: number,
  publisher: Publisher,
  add: (kind: FindingKind, text: string) => void,
): void {
  const publications = publisher.publications.get(topic) ?? [];
  const acknowledged = (seq: number) => publisher.of(topic, seq)?.fate === 'acknowledged';
  const messages = client.records.filter((r): r is MessageRecord => r.kind === 'message' && r.topic === topic);
  const everReceived = new Set(messages.map((m) => m.seq));
  // The first publication sent after the client was first connected must reach it.
  const expectedFrom = publications.find((p) => p.startedAt > firstConnected)?.seq ?? publications.length + 1;
  const lost = (from: number, to: number) => {
    const missing: number[] = [];
    for (let seq = Math.max(1, from); seq <= to; seq++) if (acknowledged(seq) && !everReceived.has(seq)) missing.push(seq);
    return missing;
  };
  const where = (m: MessageRecord | undefined) => {
    if (!m) return 'the start';
    const info = client.connections.get(m.conn);
    return `seq ${m.seq} (conn ${m.conn} on ${info?.instance ?? '?'}, id ${m.id ?? '-'})`;
  };

  const seen = new Set<number>();
  let highest: MessageRecord | undefined;
  let resetSinceHighest = false;
  for (const record of client.records) {
    if (record.kind === 'reset' && record.topics.includes(topic)) resetSinceHighest = true;
    if (record.kind !== 'message' || record.topic !== topic) continue;
    const seq = record.seq;
    if (seen.has(seq)) {
      add('duplicate', `${who} topic ${topic}: seq ${seq} again on conn ${record.conn} (${connText(client, record.conn)}) after ${where(highest)}`);
      continue;
    }
    seen.add(seq);
    if (highest && seq < highest.seq) {
      // Only an acknowledged seq has a defined place: it was answered before any later one was sent.
      if (acknowledged(seq)) {
        add(
          'out-of-order',
          `${who} topic ${topic}: acknowledged seq ${seq} arrived on conn ${record.conn} (${connText(client, record.conn)}) after ${where(highest)}`,
        );
      }
      continue;
    }
    const missing = highest ? lost(highest.seq + 1, seq - 1) : lost(expectedFrom, seq - 1);
    if (missing.length > 0 && !resetSinceHighest) {
      add(
        'silent-gap',
        `${who} topic ${topic}: after ${where(highest)} came ${where(record)}${conResume(client, record)}; ` +
          `acknowledged ${ranges(missing)} never arrived and no pushlet:reset named ${topic} in between`,
      );
    }
    highest = record;
    resetSinceHighest = false;
  }
  const last = publisher.lastAcknowledged(topic);
  const tail = lost(highest ? highest.seq + 1 : expectedFrom, last);
  if (tail.length > 0) {
    const kind = resetSinceHighest ? 'not-caught-up' : 'silent-gap';
    add(
      kind,
      `${who} topic ${topic}: last got ${where(highest)}; acknowledged ${ranges(tail)} (up to the last acknowledged ${last}) never arrived` +
        (resetSinceHighest ? ' (a pushlet:reset came after it)' : ' and no pushlet:reset named the topic'),
    );
  }
}

/**
 * Publications whose fate is unknown have no place the publisher can vouch for, but every client
 * must see them where Redis put them, so in the same place relative to every other message.
 */
function judgeAgreement(clients: readonly ChaosClient[], publisher: Publisher, add: (kind: FindingKind, text: string) => void): void {
  for (const [topic, publications] of publisher.publications) {
    const orders: Array<{ client: ChaosClient; position: Map<number, number> }> = [];
    for (const client of clients) {
      if (!client.topics.includes(topic)) continue;
      const position = new Map<number, number>();
      for (const r of client.records) if (r.kind === 'message' && r.topic === topic && !position.has(r.seq)) position.set(r.seq, position.size);
      orders.push({ client, position });
    }
    for (const u of publications) {
      if (u.fate !== 'unknown') continue;
      const holders = orders.filter((o) => o.position.has(u.seq));
      if (holders.length < 2) continue;
      const reference = holders[0]!;
      let reported = false;
      for (const other of holders.slice(1)) {
        for (const [seq, at] of reference.position) {
          if (seq === u.seq || !other.position.has(seq)) continue;
          const before = at < reference.position.get(u.seq)!;
          const otherBefore = other.position.get(seq)! < other.position.get(u.seq)!;
          if (before !== otherBefore && !reported) {
            reported = true;
            add(
              'order-disagreement',
              `topic ${topic}: ${reference.client.name} saw seq ${seq} ${before ? 'before' : 'after'} seq ${u.seq} (fate unknown), ${other.client.name} saw it ${otherBefore ? 'before' : 'after'}`,
            );
          }
        }
      }
    }
  }
}

/** `CHAOS_DEBUG`: the positions, receipt times and Redis state behind a reset judged unjustified. */
function resetDetails(
  client: ChaosClient,
  record: ResetRecord,
  topics: readonly string[],
  info: ConnectionInfo | undefined,
  losses: readonly HistoryLoss[],
  publisher: Publisher,
  explain: ReadonlyMap<unknown, string>,
): string {
  const lines: string[] = [];
  lines.push(
    `reset read at ${wallClock(record.at)} (wall ms); conn opened ${info ? wallClock(info.openedAt) : '?'}, resume id obtained ${info ? wallClock(info.baseline) : '?'}`,
  );
  for (const loss of losses) {
    lines.push(
      `loss ${loss.what} topics ${[...loss.topics].join(',')}: killed ${wallClock(loss.killedAt)} restarted ${Number.isFinite(loss.restartedAt) ? wallClock(loss.restartedAt) : 'never'} (Redis clock at restart ${loss.clockAtRestart})`,
    );
  }
  for (const topic of topics) {
    const resumed = positionIn(info?.resumeId, topic);
    let last: MessageRecord | undefined;
    for (const r of client.records) {
      if (r.at >= record.at) break;
      if (r.kind === 'message' && r.topic === topic) last = r;
    }
    const lastPosition = last ? positionIn(last.id, topic) : undefined;
    const ackedAfter = (publisher.publications.get(topic) ?? []).filter(
      (p) => p.fate === 'acknowledged' && p.seq > (last?.seq ?? 0) && p.settledAt < record.at,
    ).length;
    lines.push(
      `${topic}: resumed from ${resumed ? `${resumed.ms}-${resumed.seq}` : 'no position'}; last message before it seq ${last?.seq ?? '-'} ` +
        `at position ${lastPosition ? `${lastPosition.ms}-${lastPosition.seq}` : '-'} read at ${last ? wallClock(last.at) : '-'} ` +
        `(${last && lastPosition ? `${wallClock(last.at) - lastPosition.ms} ms after Redis stamped it` : '-'}); ` +
        `${ackedAfter} acknowledged publications after it before the reset`,
    );
  }
  // The client's last records before the reset: opens, connected ids, this reset's topics' messages and resets, closes.
  const trace = client.records
    .filter((r) => r.at <= record.at && r.at >= record.at - 8_000)
    .filter((r) => r.kind !== 'message' || topics.includes(r.topic))
    .slice(-24)
    .map((r) => {
      const t = wallClock(r.at) % 100_000;
      switch (r.kind) {
        case 'open':
          return `${t} open#${r.conn}->${r.instance}`;
        case 'connected':
          return `${t} connected#${r.conn} ${topics
            .map((tp) => {
              const p = positionIn(r.id, tp);
              return `${tp}@${p ? `${p.ms}-${p.seq}` : '-'}`;
            })
            .join(',')}`;
        case 'message':
          return `${t} m#${r.conn} ${r.topic}/${r.seq}`;
        case 'reset':
          return `${t} RESET#${r.conn} [${r.topics.join(',')}] ${r.reason.slice(0, 24)}`;
        case 'closed':
          return `${t} closed#${r.conn} (${r.cause})`;
        default:
          return `${t} ${r.kind}#${r.conn}`;
      }
    });
  lines.push(`trace (wall ms mod 1e5): ${trace.join(' | ')}`);
  lines.push(`probe: ${explain.get(record) ?? '(none)'}`);
  return lines.join('\n      ');
}

function connText(client: ChaosClient, conn: number): string {
  const info = client.connections.get(conn);
  return info ? `on ${info.instance}, resumed from ${info.resumeId ?? 'nothing'}` : '?';
}

function conResume(client: ChaosClient, record: MessageRecord): string {
  const info = client.connections.get(record.conn);
  return info?.resumeId ? ` [conn ${record.conn} resumed from ${info.resumeId}]` : '';
}

/** `3-5,9` */
export function ranges(seqs: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < seqs.length;) {
    let j = i;
    while (j + 1 < seqs.length && seqs[j + 1] === seqs[j]! + 1) j++;
    parts.push(i === j ? String(seqs[i]) : `${seqs[i]}-${seqs[j]}`);
    i = j + 1;
  }
  const text = parts.join(',');
  return `seq ${text.length > 120 ? text.slice(0, 120) + '…' : text} (${seqs.length})`;
}

/** The position a resume id gives `topic` (a cursor's entry), if any. */
export function positionIn(id: string | undefined, topic: string): Position | undefined {
  const parsed = parseResumeId(id);
  if (!parsed) return undefined;
  if (parsed.kind === 'position') return parsed.position;
  return parsed.positions.get(topicHash(topic));
}

/** performance.now() as wall-clock milliseconds (Redis's clock on this machine). */
export function wallClock(at: number): number {
  return Math.round(performance.timeOrigin + at);
}
