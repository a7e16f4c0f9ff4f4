/**
 * The state of an instance's link to Redis, as one explicit machine:
 *
 * - `starting`: connecting for the first time;
 * - `recovering`: both connections answer; loading scripts, subscribing every watched topic and
 *   reading what was missed from history, while live messages are held;
 * - `ready`: publications go out, live messages are delivered as they come;
 * - `down`: a connection was lost (or a recovery failed); publications wait in the outbox, live
 *   messages are held, and recovery is tried again as soon as both connections answer;
 * - `stopped`: for good.
 */
export type RedisLinkState = 'starting' | 'recovering' | 'ready' | 'down' | 'stopped';

const ALLOWED: Record<RedisLinkState, readonly RedisLinkState[]> = {
  starting: ['recovering', 'down', 'stopped'],
  recovering: ['ready', 'down', 'stopped'],
  ready: ['down', 'stopped'],
  down: ['recovering', 'stopped'],
  stopped: [],
};

/** The link's state and its one transition function. */
export class RedisLink {
  private current: RedisLinkState = 'starting';
  /** Advances on every transition: work started in one recovery can tell it was overtaken. */
  private generation = 0;

  constructor(private readonly entered: (state: RedisLinkState, previous: RedisLinkState) => void) {}

  get state(): RedisLinkState {
    return this.current;
  }

  get epoch(): number {
    return this.generation;
  }

  /** Moves to `next` if the machine allows it from here; false (and nothing happens) otherwise. */
  to(next: RedisLinkState): boolean {
    const previous = this.current;
    if (!ALLOWED[previous].includes(next)) return false;
    this.current = next;
    this.generation += 1;
    this.entered(next, previous);
    return true;
  }
}
