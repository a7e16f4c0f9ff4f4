import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { LoggerService } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { MemoryBroker, PUSHLET_BROKER, PUSHLET_OPTIONS, PushletModule, type PushletModuleOptions, type ResolvedPushletOptions } from '../src/index.js';
import { resolveOptions } from '../src/pushlet.options.js';
import { MESSAGES } from '../src/pushlet.messages.js';
import { startApp } from './support/app.js';
import { SseClient } from './support/sse-client.js';

/** A logger that keeps every line, by level. */
class RecordingLogger implements LoggerService {
  readonly lines: Array<{ level: string; message: string }> = [];
  log(message: unknown) {
    this.lines.push({ level: 'log', message: String(message) });
  }
  warn(message: unknown) {
    this.lines.push({ level: 'warn', message: String(message) });
  }
  error(message: unknown) {
    this.lines.push({ level: 'error', message: String(message) });
  }
  of(text: string) {
    return this.lines.filter((line) => line.message === text);
  }
}

/** Options as `ConfigService.get` hands them over: strings, or undefined when a variable is unset. */
function fromEnvironment(env: Record<string, string | undefined>): PushletModuleOptions {
  const get = (name: string): any => env[name];
  return {
    heartbeatInterval: get('PUSHLET_HEARTBEAT_MS'),
    limits: { maxConnections: get('PUSHLET_MAX_CONNECTIONS'), bufferBytes: get('PUSHLET_BUFFER_BYTES') },
    history: { maxCount: get('PUSHLET_HISTORY') },
    ws: { maxPayload: get('PUSHLET_WS_MAX_PAYLOAD') },
    redis: { url: get('REDIS_URL') },
  };
}

describe('options read from the environment', () => {
  it('takes numeric strings for numeric options, and unset or empty ones as not given', () => {
    const logger = new RecordingLogger();
    const resolved = resolveOptions({
      ...fromEnvironment({ PUSHLET_HEARTBEAT_MS: '5000', PUSHLET_MAX_CONNECTIONS: ' 200 ', PUSHLET_BUFFER_BYTES: '', PUSHLET_WS_MAX_PAYLOAD: '1024' }),
      logger,
    });
    assert.equal(resolved.heartbeatInterval, 5000);
    assert.equal(resolved.limits.maxConnections, 200);
    assert.equal(resolved.limits.bufferBytes, 1024 * 1024, 'an empty string is the default');
    assert.equal(resolved.history.maxCount, 1000, 'undefined is the default');
    assert.equal(resolved.ws && resolved.ws.maxPayload, 1024);
  });

  it('takes numeric strings in the redis option too', () => {
    const resolved = resolveOptions({
      redis: { host: '10.0.0.1', port: '6380', db: '2', connectTimeoutMs: '100', maxQueued: '5', startWithoutRedis: 'true' } as any,
    });
    assert.deepEqual(resolved.redis?.source, { kind: 'host', host: '10.0.0.1', port: 6380, username: undefined, password: undefined, db: 2 });
    assert.equal(resolved.redis?.connectTimeoutMs, 100);
    assert.equal(resolved.redis?.maxQueued, 5);
    assert.equal(resolved.redis?.startWithoutRedis, true);
  });

  it('names the option, the value and its type when a value is wrong', () => {
    const rejects = (options: Record<string, unknown>, message: string) =>
      assert.throws(
        () => resolveOptions(options as PushletModuleOptions),
        (error: Error) => {
          assert.ok(error instanceof RangeError);
          assert.ok(error.message.startsWith(message), `${JSON.stringify(error.message)} should start with ${JSON.stringify(message)}`);
          return true;
        },
      );
    rejects({ heartbeatInterval: 'abc' }, 'Pushlet option heartbeatInterval must be a positive number, got "abc" (string)');
    rejects({ heartbeatInterval: -1 }, 'Pushlet option heartbeatInterval must be a positive number, got -1 (number)');
    rejects({ heartbeatInterval: '0' }, 'Pushlet option heartbeatInterval must be a positive number, got "0" (string)');
    rejects({ heartbeatInterval: true }, 'Pushlet option heartbeatInterval must be a positive number, got true (boolean)');
    rejects({ limits: { bufferBytes: '1MB' } }, 'Pushlet option limits.bufferBytes must be a positive number, got "1MB" (string)');
    rejects({ history: { maxAgeMs: {} } }, 'Pushlet option history.maxAgeMs must be a positive number, got an object (object)');
    rejects({ history: { recentWindowBytes: -1 } }, 'Pushlet option history.recentWindowBytes must be a whole number of 0 or more, got -1 (number)');
    assert.equal(resolveOptions({ history: { recentWindowBytes: 0 } }).history.recentWindowBytes, 0, '0 turns the recent window off');
    rejects({ redis: { url: 'redis://x', commandTimeoutMs: 'soon' } }, 'Pushlet option redis.commandTimeoutMs must be a positive number, got "soon" (string)');
    rejects({ redis: { host: 'x', port: '63a79' } }, 'Pushlet option redis.port must be a positive number, got "63a79" (string)');
    rejects({ redis: { host: 'x', db: '1.5' } }, 'Pushlet option redis.db must be a whole number of 0 or more, got "1.5" (string)');
    rejects({ redis: { url: 'redis://x', startWithoutRedis: 'yes' } }, 'Pushlet option redis.startWithoutRedis must be true or false, got "yes" (string)');
  });

  for (const [label, redis] of [
    ['redis: undefined', undefined],
    ['redis: {}', {}],
    ['redis: { url: undefined }', { url: undefined }],
    ["redis: { url: '' }", { url: '' }],
    ['every source unset or empty, other redis options set', { url: '', host: undefined, cluster: undefined, client: undefined, keyPrefix: 'app:' }],
  ] as const) {
    it(`${label} means no Redis, logged once through the configured logger`, () => {
      const logger = new RecordingLogger();
      const resolved = resolveOptions({ redis, logger });
      assert.equal(resolved.redis, undefined);
      assert.deepEqual(logger.lines, [{ level: 'warn', message: MESSAGES.redisNotConfigured }]);
    });
  }

  it('logs nothing about Redis when there is no redis option at all', () => {
    const logger = new RecordingLogger();
    resolveOptions({ logger });
    assert.deepEqual(logger.lines, []);
  });

  it('still rejects two sources, and a redis source with a broker of your own', () => {
    assert.throws(() => resolveOptions({ redis: { url: 'redis://x', host: 'y' } }), /exactly one of url, host, cluster or client/);
    assert.throws(
      () => resolveOptions({ redis: { url: 'redis://x' }, broker: new MemoryBroker({ maxCount: 1, maxAgeMs: 1000, maxTopics: 1 }) }),
      /cannot be combined/,
    );
    const logger = new RecordingLogger();
    const broker = new MemoryBroker({ maxCount: 1, maxAgeMs: 1000, maxTopics: 1 });
    assert.equal(resolveOptions({ redis: { url: '' }, broker, logger }).broker, broker, 'an empty redis option does not conflict with a broker');
  });

  it('forRootAsync with values from the environment starts in memory, logs it once, and uses a string heartbeat', async () => {
    const logger = new RecordingLogger();
    const env = { PUSHLET_HEARTBEAT_MS: '150', REDIS_URL: undefined };
    const t = await startApp({
      metadata: {
        imports: [PushletModule.forRootAsync({ useFactory: () => ({ ...fromEnvironment(env), logger }) })],
      },
    });
    const client = await SseClient.open(`${t.url}/events?topic=a`);
    try {
      const options = t.app.get<ResolvedPushletOptions>(PUSHLET_OPTIONS);
      assert.equal(options.heartbeatInterval, 150);
      assert.ok(t.app.get(PUSHLET_BROKER) instanceof MemoryBroker);
      assert.equal(logger.of(MESSAGES.redisNotConfigured).length, 1);
      await client.waitForComments(1, 3_000);
      assert.match(client.comments[0]!, /^heartbeat /);
    } finally {
      client.close();
      await t.close();
    }
  });

  it('forRootAsync with a bad value from the environment fails at start-up, naming it', async () => {
    await assert.rejects(
      Test.createTestingModule({
        imports: [PushletModule.forRootAsync({ useFactory: () => fromEnvironment({ PUSHLET_HEARTBEAT_MS: '5s' }) })],
      }).compile(),
      /heartbeatInterval must be a positive number, got "5s" \(string\)/,
    );
  });
});
