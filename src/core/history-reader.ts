import type { PushletMessage } from '../interfaces/message.interface.js';
import { formatCursor, parseResumeId, topicHash, type Position } from '../protocol/ids.js';
import { exactTopicProblem } from '../protocol/topics.js';
import { MESSAGES } from '../pushlet.messages.js';
import type { Envelope } from './envelope.js';
import { PushletUnavailableError, PushletUnsupportedError, PushletValidationError } from './errors.js';
import type { RecoveryCore } from './recovery-core.js';

/**
 * Reads pages of a topic's history (the WebSocket `history` command and `PushletService.history()`):
 * the topic's newest messages still in history, oldest first, the page ending just before
 * `before` when given. The broker only reads ({@link RecoveryCore.tail}).
 *
 * Ids: where one position orders every topic (in memory, one Redis server) a message's id is its
 * position, as on the wire. Where each topic orders its own (Redis Cluster) it is a resume cursor
 * of that topic alone (`c1_…`), so that it resumes a connection on the topic exactly after it, as
 * a live message's id would. `before` takes either form, and a connection's cursor too (its
 * entry for the topic).
 */
export class HistoryReader {
  constructor(private readonly core: Pick<RecoveryCore, 'tail' | 'canTail' | 'ordering'>) {}

  /**
   * @throws PushletValidationError for a bad topic (patterns have no history) or a `before` that
   * is not an id placing this topic.
   * @throws PushletUnsupportedError when the broker cannot read its newest history.
   * @throws PushletUnavailableError while the broker cannot be read.
   */
  async read(topic: string, limit: number, before?: string): Promise<PushletMessage[]> {
    const problem = exactTopicProblem(topic, MESSAGES.historyPattern);
    if (problem) throw new PushletValidationError(problem);
    const end = before === undefined ? undefined : this.position(topic, before);
    if (!this.core.canTail) throw new PushletUnsupportedError(MESSAGES.historyUnsupported);
    let pages: Envelope[][];
    try {
      pages = await this.core.tail([{ topic, limit, before: end }]);
    } catch (error) {
      throw new PushletUnavailableError(MESSAGES.historyReadUnavailable, error);
    }
    const envelopes = pages[0] ?? [];
    if (this.core.ordering === 'total') return envelopes.map((envelope) => envelope.message);
    const hash = topicHash(topic);
    return envelopes.map((envelope) => ({ ...envelope.message, id: formatCursor([[hash, envelope.position]]) }));
  }

  /** The position a client's `before` names for `topic`; never echoed. */
  private position(topic: string, before: string): Position {
    const id = parseResumeId(before);
    if (id?.kind === 'position') return id.position;
    const position = id?.kind === 'cursor' && this.core.ordering === 'per-topic' ? id.positions.get(topicHash(topic)) : undefined;
    if (!position) throw new PushletValidationError(MESSAGES.historyBefore);
    return position;
  }
}
