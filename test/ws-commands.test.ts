import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CommandBudget, parseCommandFrame as parseCommand } from '../src/ws/ws-commands.js';

const frame = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value));

describe('WebSocket commands', () => {
  it('parses the three actions, with ref, lastEventId and unknown fields ignored', () => {
    assert.deepEqual(parseCommand(frame({ action: 'ping' })), { ok: true, command: { action: 'ping', ref: undefined } });
    assert.deepEqual(parseCommand(frame({ action: 'subscribe', topic: 'a', lastEventId: '1-0', ref: 'x', extra: true })), {
      ok: true,
      command: { action: 'subscribe', topics: ['a'], lastEventId: '1-0', ref: 'x' },
    });
    assert.deepEqual(parseCommand(frame({ action: 'unsubscribe', topic: 'users/1', ref: 3 })), {
      ok: true,
      command: { action: 'unsubscribe', topics: ['users/1'], ref: 3 },
    });
  });

  it('reads null as absent for the optional fields, and fragmented frames as one', () => {
    assert.deepEqual(parseCommand(frame({ action: 'subscribe', topic: 'a', lastEventId: null, ref: null })), {
      ok: true,
      command: { action: 'subscribe', topics: ['a'], lastEventId: undefined, ref: undefined },
    });
    const text = JSON.stringify({ action: 'ping', ref: 1 });
    assert.deepEqual(parseCommand([Buffer.from(text.slice(0, 5)), Buffer.from(text.slice(5))]), {
      ok: true,
      command: { action: 'ping', ref: 1 },
    });
  });

  it('says what is wrong, echoing what could be read', () => {
    assert.deepEqual(parseCommand(frame({ action: 'ping', ref: [1] })), {
      ok: false,
      error: { reason: 'ref must be a string of at most 64 characters or a finite number' },
    });
    assert.deepEqual(parseCommand(frame({ action: 'ping', ref: true })), {
      ok: false,
      error: { reason: 'ref must be a string of at most 64 characters or a finite number' },
    });
    const bad = parseCommand(frame({ action: 'subscribe', topic: 'a b', ref: 2 }));
    assert.equal(bad.ok, false);
    if (!bad.ok) {
      assert.equal(bad.error.topic, 'a b');
      assert.equal(bad.error.ref, 2);
      assert.match(bad.error.reason, /whitespace/);
    }
    const binaryGarbage = parseCommand(Buffer.from([0xff, 0xfe, 0x00]));
    assert.equal(binaryGarbage.ok, false);
  });

  it('budgets commandsPerSecond as a token bucket: that many at once, refilled at that rate', () => {
    const budget = new CommandBudget(5, 0);
    for (let i = 0; i < 5; i++) assert.equal(budget.take(0), true);
    assert.equal(budget.take(0), false);
    assert.equal(budget.take(100), false);
    assert.equal(budget.take(200), true);
    assert.equal(budget.take(200), false);
    for (let i = 0; i < 5; i++) assert.equal(budget.take(10_000), true);
    assert.equal(budget.take(10_000), false);
  });
});
