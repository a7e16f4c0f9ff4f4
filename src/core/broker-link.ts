/**
 * The state of an instance's link to its broker, as one explicit machine (the same for every
 * broker: the recovery core drives it):
 *
 * - `starting`: connecting for the first time;
 * - `recovering`: the broker answers; preparing it, subscribing every watched topic and reading
 *   what was missed from history, while live messages are held;
 * - `ready`: publications go out, live messages are delivered as they come;
 * - `down`: something was lost (or a recovery failed); publications wait in the outbox, live
 *   messages are held, and recovery is tried again as soon as the broker is connected;
 * - `stopped`: for good.
 */
export type BrokerLinkState = 'starting' | 'recovering' | 'ready' | 'down' | 'stopped';

const ALLOWED: Record<BrokerLinkState, readonly BrokerLinkState[]> = {
  starting: ['recovering', 'down', 'stopped'],
  recovering: ['ready', 'down', 'stopped'],
  ready: ['down', 'stopped'],
  down: ['recovering', 'stopped'],
  stopped: [],
};

/** The link's state and its one transition function. */
export class BrokerLink {
  private current: BrokerLinkState = 'starting';
  /** Advances on every transition: work started in one recovery can tell it was overtaken. */
  private generation = 0;

  constructor(private readonly entered: (state: BrokerLinkState, previous: BrokerLinkState) => void) {}

  get state(): BrokerLinkState {
    return this.current;
  }

  get epoch(): number {
    return this.generation;
  }

  /** Moves to `next` if the machine allows it from here; false (and nothing happens) otherwise. */
  to(next: BrokerLinkState): boolean {
    const previous = this.current;
    if (!ALLOWED[previous].includes(next)) return false;
    this.current = next;
    this.generation += 1;
    this.entered(next, previous);
    return true;
  }
}
