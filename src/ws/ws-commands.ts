import type { RawData } from 'ws';
import { parseCommand, type ParsedCommand } from '../protocol/commands.js';

export type { Command as WsCommand, CommandRef as WsRef } from '../protocol/index.js';

/** @internal Reads one command frame (text or binary; the grammar is in `protocol/commands.ts`). Never throws. */
export function parseCommandFrame(data: RawData): ParsedCommand {
  return parseCommand(toText(data));
}

function toText(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}

/**
 * The `commandsPerSecond` budget of one connection, as a token bucket: up to that many commands
 * at once, refilled at that rate. A connection that overdraws it is closed with 1008. One
 * command counts once however many topics it names, so a resubscription never trips it.
 */
export class CommandBudget {
  private readonly capacity: number;
  private tokens: number;
  private last: number;

  constructor(
    private readonly perSecond: number,
    now = performance.now(),
  ) {
    this.capacity = Math.max(1, perSecond);
    this.tokens = this.capacity;
    this.last = now;
  }

  /** Spends one command; false when the budget is exhausted. */
  take(now = performance.now()): boolean {
    this.tokens = Math.min(this.capacity, this.tokens + ((now - this.last) * this.perSecond) / 1_000);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
