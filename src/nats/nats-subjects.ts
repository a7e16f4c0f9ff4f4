import { BROADCAST_TOPIC } from '../protocol/topics.js';

/**
 * NATS subjects of the module's topics. A topic's `/`-separated segments become `.`-separated
 * tokens, each escaped: NATS reserves `.`, `*`, `>` and whitespace, and a token cannot be empty.
 * `%` starts an escape: `%XX` an ASCII character, `%uXXXX` any other UTF-16 code unit, and a `%`
 * alone an empty segment. So patterns map onto NATS wildcards: `orders/*` is `<h>.t.orders.*`,
 * `users/42/#` is `<h>.t.users.42.>` and `<h>.t.users.42`.
 *
 * `<prefix>.h.` is the stream's, `<prefix>.control` the instance-wide commands. The broadcast
 * topic of `publishToAll` is `<prefix>.h.b`, outside every pattern's subjects.
 */
export class NatsSubjects {
  /** Every subject the stream records. */
  readonly history: string;
  /** Instance-wide commands (plain NATS, not recorded). */
  readonly control: string;
  private readonly topicHead: string;
  private readonly broadcast: string;

  constructor(readonly prefix: string) {
    this.history = `${prefix}.h.>`;
    this.control = `${prefix}.control`;
    this.topicHead = `${prefix}.h.t.`;
    this.broadcast = `${prefix}.h.b`;
  }

  /** The stream subject of `topic`. */
  topic(topic: string): string {
    return topic === BROADCAST_TOPIC ? this.broadcast : this.topicHead + topic.split('/').map(escapeToken).join('.');
  }

  /** The stream subjects (with NATS wildcards) that carry every topic `pattern` matches. */
  pattern(pattern: string): string[] {
    const segments = pattern.split('/');
    const tokens = segments.map((segment) => (segment === '*' ? '*' : segment === '#' ? '>' : escapeToken(segment)));
    const subject = this.topicHead + tokens.join('.');
    if (segments.at(-1) !== '#') return [subject];
    // `#` matches zero segments too: `users/42/#` holds `users/42` itself (a lone `#` holds no empty topic).
    return segments.length > 1 ? [subject, this.topicHead + tokens.slice(0, -1).join('.')] : [subject];
  }

  /** The topic of a stream subject, or `undefined` for a subject that is not one of this prefix's. */
  topicOf(subject: string): string | undefined {
    if (subject === this.broadcast) return BROADCAST_TOPIC;
    if (!subject.startsWith(this.topicHead)) return undefined;
    try {
      return subject.slice(this.topicHead.length).split('.').map(unescapeToken).join('/');
    } catch {
      return undefined;
    }
  }
}

const PLAIN = /^[\x21-\x7e]$/;
const SPECIAL = new Set(['%', '.', '*', '>']);

function escapeToken(segment: string): string {
  if (segment === '') return '%';
  let out = '';
  for (let i = 0; i < segment.length; i++) {
    const c = segment[i]!;
    if (PLAIN.test(c) && !SPECIAL.has(c)) out += c;
    else {
      const code = c.charCodeAt(0);
      out += code < 0x80 ? `%${code.toString(16).padStart(2, '0')}` : `%u${code.toString(16).padStart(4, '0')}`;
    }
  }
  return out;
}

function unescapeToken(token: string): string {
  if (token === '%') return '';
  return token.replace(/%(u[0-9a-f]{4}|[0-9a-f]{2})|%/g, (escape: string, hex: string | undefined) => {
    if (!hex) throw new Error('malformed escape');
    return String.fromCharCode(parseInt(hex[0] === 'u' ? hex.slice(1) : hex, 16));
  });
}
