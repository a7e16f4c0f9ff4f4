import { MESSAGES } from '../pushlet.messages.js';
import type { PushletTransport } from '../protocol/frames.js';
import { PushletLimitError } from './errors.js';

export interface ConnectionLimits {
  readonly maxConnections: number;
  readonly maxConnectionsPerAddress: number;
  readonly maxConnectionsPerUser: number;
}

/** A slot taken by one open connection; release it exactly once when the connection ends. */
export interface ConnectionSlot {
  release(): void;
}

/** Counts open connections per transport and per client address, and enforces the limits. */
export class ConnectionTracker {
  private readonly open = { sse: 0, ws: 0 };
  private readonly perAddress = new Map<string, number>();
  private readonly perUser = new Map<string, number>();

  constructor(private readonly limits: ConnectionLimits) {}

  /**
   * Whether connections are counted per client address: only under a `maxConnectionsPerAddress`.
   * Reading a socket's peer address is a system call (`getpeername`), about 2 µs on its own and
   * several times that while the machine is busy with other connections: a connection churn paid
   * it on every open for a count nobody read.
   */
  get countsAddresses(): boolean {
    return Number.isFinite(this.limits.maxConnectionsPerAddress);
  }

  /**
   * Takes a slot, or throws a {@link PushletLimitError} (its `reason`: which limit) when a limit
   * is reached. `address`: the client's, when {@link countsAddresses}; not counted without it.
   */
  acquire(transport: PushletTransport, address: string | undefined, user?: string): ConnectionSlot {
    if (this.open.sse + this.open.ws >= this.limits.maxConnections) {
      throw new PushletLimitError(MESSAGES.tooManyConnections, 'limit');
    }
    const fromAddress = address === undefined ? 0 : (this.perAddress.get(address) ?? 0);
    if (address !== undefined && fromAddress >= this.limits.maxConnectionsPerAddress) {
      throw new PushletLimitError(MESSAGES.tooManyConnectionsFromAddress, 'address_limit');
    }
    const ofUser = user === undefined ? 0 : (this.perUser.get(user) ?? 0);
    if (user !== undefined && ofUser >= this.limits.maxConnectionsPerUser) {
      throw new PushletLimitError(MESSAGES.tooManyConnectionsOfUser, 'user_limit');
    }
    if (address !== undefined) this.perAddress.set(address, fromAddress + 1);
    if (user !== undefined) this.perUser.set(user, ofUser + 1);
    this.open[transport] += 1;
    return new Slot(this, transport, address, user);
  }

  /** Gives back what {@link acquire} took (through its slot's `release`, once). */
  releaseSlot(transport: PushletTransport, address: string | undefined, user: string | undefined): void {
    this.open[transport] -= 1;
    if (address !== undefined) {
      const left = (this.perAddress.get(address) ?? 1) - 1;
      if (left > 0) this.perAddress.set(address, left);
      else this.perAddress.delete(address);
    }
    if (user === undefined) return;
    const leftOfUser = (this.perUser.get(user) ?? 1) - 1;
    if (leftOfUser > 0) this.perUser.set(user, leftOfUser);
    else this.perUser.delete(user);
  }

  snapshot() {
    return {
      sse: this.open.sse,
      ws: this.open.ws,
      total: this.open.sse + this.open.ws,
      addresses: this.perAddress.size,
      users: this.perUser.size,
    };
  }
}

/** One connection's place in the counts, released once (a class: a closure per connection costs twice as much). */
class Slot implements ConnectionSlot {
  private released = false;

  constructor(
    private readonly tracker: ConnectionTracker,
    private readonly transport: PushletTransport,
    private readonly address: string | undefined,
    private readonly user: string | undefined,
  ) {}

  release(): void {
    if (this.released) return;
    this.released = true;
    this.tracker.releaseSlot(this.transport, this.address, this.user);
  }
}
