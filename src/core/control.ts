import type { PushletControlCommand } from '../interfaces/broker.interface.js';

/** A WebSocket close reason holds at most 123 bytes (RFC 6455); a disconnect reason fits in one. */
export const MAX_REASON_BYTES = 123;
/** Longest user id a control command may carry (longer ones are not read: nobody has such an id). */
export const MAX_USER_ID_LENGTH = 1_024;
/** Largest control payload read from a broker. */
const MAX_CONTROL_BYTES = 4 * 1_024;

/** `text` cut to at most `maxBytes` of UTF-8, never in the middle of a character. */
export function truncateUtf8(text: string, maxBytes: number): string {
  if (text.length * 3 <= maxBytes) return text;
  const encoder = new TextEncoder();
  if (encoder.encode(text).length <= maxBytes) return text;
  let bytes = 0;
  let end = 0;
  for (const char of text) {
    const size = encoder.encode(char).length;
    if (bytes + size > maxBytes) break;
    bytes += size;
    end += char.length;
  }
  return text.slice(0, end);
}

/** The wire form of a control command (JSON text); {@link parseControl} reads it back. */
export function encodeControl(command: PushletControlCommand): string {
  return JSON.stringify(command);
}

/**
 * Reads a control command from a broker, trusting nothing: JSON, a known `kind`, fields of the
 * right types and sizes (the reason cut to {@link MAX_REASON_BYTES}). `undefined` for anything
 * else, which the caller logs and ignores.
 */
export function parseControl(payload: string): PushletControlCommand | undefined {
  if (payload.length > MAX_CONTROL_BYTES) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(payload);
  } catch {
    return undefined;
  }
  return checkControl(value);
}

/** The command if `value` is a well-formed one (the reason cut to size), else `undefined`. */
export function checkControl(value: unknown): PushletControlCommand | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { kind, userId, reason } = value as Record<string, unknown>;
  if (kind !== 'disconnect') return undefined;
  if (typeof userId !== 'string' || userId.length === 0 || userId.length > MAX_USER_ID_LENGTH) return undefined;
  if (typeof reason !== 'string') return undefined;
  return { kind, userId, reason: truncateUtf8(reason, MAX_REASON_BYTES) };
}
