/**
 * Names of the module's Redis keys and channels. Every key and channel of one topic carries the
 * topic as its hash tag (`{topic}`), so that in a Redis Cluster a topic's stream and channel live
 * in one slot and one script can append and publish atomically. Braces and `%` in a topic are
 * percent-encoded inside the tag, so that a topic can never end the tag early.
 */
export class RedisKeys {
  /** Single server: the last id handed out, shared by every topic (ids totally ordered). */
  readonly lastId: string;
  /** Single server: the history horizon and the run id of the server (a restart may lose data). */
  readonly epoch: string;
  /**
   * The classic (not sharded) pub/sub channel of instance-wide commands (`PushletBroker.control`):
   * every instance subscribes to it; a Cluster broadcasts a classic PUBLISH to every node.
   */
  readonly control: string;

  /** Single server: the first segments of topics published to, scored by the millisecond of their newest id. */
  readonly segmentIndex: string;

  constructor(readonly prefix: string) {
    this.lastId = `${prefix}id`;
    this.epoch = `${prefix}epoch`;
    this.control = `${prefix}control`;
    this.segmentIndex = `${prefix}x`;
  }

  /** Single server: the topics under a first segment, scored by the millisecond of their newest id (pattern resumes). */
  topicIndex(segment: string): string {
    return `${this.segmentIndex}:${segment}`;
  }

  /**
   * The one pub/sub glob that carries every topic a pattern can match: its first segment's
   * topics (`<prefix>c:{orders}` and `<prefix>c:{orders/…}`), or every topic when the pattern
   * starts with a wildcard. One glob per first segment, not per pattern: Redis tests every
   * published channel against every glob it holds, so globs must not grow with the patterns
   * clients use; the instance matches each message exactly.
   */
  patternGlob(pattern: string): string {
    const segment = firstSegment(pattern);
    const channels = `${escapeGlob(this.prefix)}c:{`;
    return segment === '*' || segment === '#' ? `${channels}*` : `${channels}${escapeGlob(tag(segment))}[/}]*`;
  }

  /** The stream holding `topic`'s history. */
  stream(topic: string): string {
    return `${this.prefix}s:{${tag(topic)}}`;
  }

  /**
   * `topic`'s marker hash: `l` the last id published, `h` (Cluster) the horizon before which its
   * history may have been lost, `o:<origin>` each publisher's last publication (counter and id),
   * `e` when the topic's keys' lifetimes were last renewed (see `PUBLISH_SCRIPT`).
   */
  meta(topic: string): string {
    return `${this.prefix}m:{${tag(topic)}}`;
  }

  /** `topic`'s presence: a sorted set of client ids scored by when they expire (ms, Redis's clock). */
  presence(topic: string): string {
    return `${this.prefix}p:{${tag(topic)}}`;
  }

  /** `topic`'s presence members: a hash of client id to the member as JSON. */
  presenceMembers(topic: string): string {
    return `${this.prefix}pm:{${tag(topic)}}`;
  }

  /** The pub/sub channel of `topic`. */
  channel(topic: string): string {
    return `${this.prefix}c:{${tag(topic)}}`;
  }
}

/** A topic's (or pattern's) first `/`-separated segment. */
export function firstSegment(topic: string): string {
  const slash = topic.indexOf('/');
  return slash < 0 ? topic : topic.slice(0, slash);
}

function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}

function tag(topic: string): string {
  return topic.replace(/[%{}]/g, (c) => encodeURIComponent(c));
}
