import { MESSAGES } from './pushlet.messages.js';

/**
 * Readers for option values that may come from the environment (`ConfigService.get`,
 * `process.env`), where every value is a string and an unset variable is `undefined` or `''`.
 */

/** True for `undefined`, `null` and a blank string: the option counts as not given. */
export function isUnset(value: unknown): value is undefined | null | '' {
  return value === undefined || value === null || (typeof value === 'string' && value.trim() === '');
}

/** A number as given, or the number a numeric string spells; `undefined` for anything else. */
function numeric(value: unknown): number | undefined {
  if (typeof value === 'number') return value;
  if (typeof value !== 'string') return undefined;
  const parsed = Number(value.trim());
  return Number.isFinite(parsed) ? parsed : undefined;
}

/**
 * A positive number (or numeric string) for the option `name`; `fallback` when not given.
 * @throws RangeError naming the option, the value and its type.
 */
export function positiveNumber(value: unknown, fallback: number, name: string): number {
  if (isUnset(value)) return fallback;
  const number = numeric(value);
  if (number === undefined || Number.isNaN(number) || number <= 0) throw new RangeError(MESSAGES.positiveNumber(name, describeValue(value)));
  return number;
}

/**
 * A whole number of 0 or more (or such a numeric string) for the option `name`; `undefined` when not given.
 * @throws RangeError naming the option, the value and its type.
 */
export function nonNegativeInteger(value: unknown, name: string): number | undefined {
  if (isUnset(value)) return undefined;
  const number = numeric(value);
  if (number === undefined || !Number.isInteger(number) || number < 0) throw new RangeError(MESSAGES.nonNegativeInteger(name, describeValue(value)));
  return number;
}

/**
 * `true`/`false`, or the strings `"true"`/`"false"` for the option `name`; `fallback` when not given.
 * @throws RangeError naming the option, the value and its type.
 */
export function booleanOption(value: unknown, fallback: boolean, name: string): boolean {
  if (isUnset(value)) return fallback;
  if (typeof value === 'boolean') return value;
  const text = typeof value === 'string' ? value.trim().toLowerCase() : undefined;
  if (text === 'true') return true;
  if (text === 'false') return false;
  throw new RangeError(MESSAGES.booleanOption(name, describeValue(value)));
}

/** `"abc" (string)`, `-1 (number)`, `null`: a value as an error message shows it. */
export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'string') return `${JSON.stringify(value)} (string)`;
  if (typeof value === 'object') return `${Array.isArray(value) ? 'an array' : 'an object'} (object)`;
  return `${String(value)} (${typeof value})`;
}
