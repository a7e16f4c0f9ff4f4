import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Injectable, Logger, Module, type LoggerService } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { PUSHLET_OPTIONS, PushletModule, PushletService, type PushletModuleOptions, type ResolvedPushletOptions } from '../src/index.js';
import { SseClient } from './support/sse-client.js';
import { startApp } from './support/app.js';

const custom: PushletModuleOptions = {
  heartbeatInterval: 1234,
  sse: { path: 'stream' },
  limits: { topicsPerConnection: 7, maxConnections: 99, bufferBytes: 4096 },
  history: { maxCount: 10, maxAgeMs: 5000, maxTopics: 3 },
};

@Injectable()
class PushletConfig {
  createPushletOptions(): PushletModuleOptions {
    return custom;
  }
}

@Module({ providers: [PushletConfig], exports: [PushletConfig] })
class ConfigModule {}

/** A user's provider: proves constructor injection of PushletService works under this runner. */
@Injectable()
class Orders {
  constructor(readonly pushlet: PushletService) {}
  ship(id: string) {
    return this.pushlet.publish(`orders/${id}`, 'shipped', { id });
  }
}

async function resolved(imports: unknown[]): Promise<ResolvedPushletOptions> {
  const moduleRef = await Test.createTestingModule({ imports: imports as never[], providers: [Orders] }).compile();
  try {
    assert.ok(moduleRef.get(Orders).pushlet instanceof PushletService, 'PushletService injected by constructor');
    return moduleRef.get<ResolvedPushletOptions>(PUSHLET_OPTIONS);
  } finally {
    await moduleRef.close();
  }
}

function assertCustom(options: ResolvedPushletOptions): void {
  assert.equal(options.heartbeatInterval, 1234);
  assert.deepEqual(options.sse, { path: '/stream' });
  assert.equal(options.limits.topicsPerConnection, 7);
  assert.equal(options.limits.maxConnections, 99);
  assert.equal(options.limits.bufferBytes, 4096);
  assert.equal(options.limits.maxConnectionsPerAddress, Infinity);
  assert.deepEqual(options.history, { maxCount: 10, maxAgeMs: 5000, maxTopics: 3, maxBytes: 64 * 1024 * 1024, recentWindowBytes: 4 * 1024 * 1024 });
}

describe('PushletModule.forRoot / forRootAsync', () => {
  it('forRoot() with no options fills every default', async () => {
    const options = await resolved([PushletModule.forRoot({})]);
    assert.equal(options.heartbeatInterval, 30_000);
    assert.deepEqual(options.sse, { path: '/events' });
    assert.equal(options.limits.topicsPerConnection, 50);
    assert.equal(options.limits.bufferBytes, 1024 * 1024);
    assert.deepEqual(options.history, {
      maxCount: 1000,
      maxAgeMs: 300_000,
      maxTopics: Infinity,
      maxBytes: 64 * 1024 * 1024,
      recentWindowBytes: 4 * 1024 * 1024,
    });
    assert.ok(options.logger instanceof Logger);
  });

  it('forRoot(options)', async () => {
    assertCustom(await resolved([PushletModule.forRoot(custom)]));
  });

  it('forRootAsync({ useFactory, inject, imports })', async () => {
    assertCustom(
      await resolved([
        PushletModule.forRootAsync({
          imports: [ConfigModule],
          inject: [PushletConfig],
          useFactory: (config: PushletConfig) => config.createPushletOptions(),
        }),
      ]),
    );
  });

  it('forRootAsync({ useFactory }) returning a promise', async () => {
    assertCustom(await resolved([PushletModule.forRootAsync({ useFactory: async () => custom })]));
  });

  it('forRootAsync({ useClass })', async () => {
    assertCustom(await resolved([PushletModule.forRootAsync({ useClass: PushletConfig })]));
  });

  it('forRootAsync({ useExisting, imports })', async () => {
    assertCustom(await resolved([PushletModule.forRootAsync({ imports: [ConfigModule], useExisting: PushletConfig })]));
  });

  it('is global by default and not with isGlobal: false', async () => {
    @Module({ providers: [Orders] })
    class FeatureModule {}
    const global = await Test.createTestingModule({ imports: [PushletModule.forRoot({}), FeatureModule] }).compile();
    assert.ok(global.get(Orders).pushlet instanceof PushletService);
    await global.close();
    await assert.rejects(Test.createTestingModule({ imports: [PushletModule.forRoot({ isGlobal: false }), FeatureModule] }).compile(), /PushletService/);
  });

  it('rejects nonsense options at start-up with a message naming the option', async () => {
    await assert.rejects(resolved([PushletModule.forRoot({ heartbeatInterval: -1 })]), /heartbeatInterval must be a positive number/);
    await assert.rejects(resolved([PushletModule.forRoot({ limits: { bufferBytes: 0 } })]), /limits.bufferBytes/);
  });

  it('mounts the SSE route at a custom path, and none with sse: false', async () => {
    const t = await startApp({ sse: { path: '/custom/stream' } });
    try {
      const client = await SseClient.open(`${t.url}/custom/stream?topic=a`);
      await client.waitForEvents(1, 5_000, 'pushlet:connected');
      client.close();
      assert.equal((await fetch(`${t.url}/events`)).status, 404);
    } finally {
      await t.close();
    }
    const off = await startApp({ sse: false });
    try {
      assert.equal((await fetch(`${off.url}/events`)).status, 404);
    } finally {
      await off.close();
    }
  });

  it("logs through a custom logger (the seed's WithLogger)", async () => {
    const lines: string[] = [];
    const logger: LoggerService = {
      log: (m) => lines.push(`log ${m}`),
      warn: (m) => lines.push(`warn ${m}`),
      error: (m) => lines.push(`error ${m}`),
    };
    const t = await startApp({ logger, limits: { bufferBytes: 128 * 1024, maxMessageBytes: 64 * 1024 } });
    const client = await SseClient.open(`${t.url}/events?topic=big`);
    try {
      await client.waitForEvents(1);
      // Stop reading, then overflow the 128 KiB buffer: the module logs the disconnect through `logger`.
      client.pause();
      for (let i = 0; i < 500 && t.pushlet.stats().slowConsumersDisconnected === 0; i++) {
        await t.pushlet.publish('big', 'message', 'x'.repeat(60 * 1024));
      }
      assert.equal(t.pushlet.stats().slowConsumersDisconnected, 1);
      assert.ok(
        lines.some((line) => line.startsWith('warn') && line.includes('slow sse client')),
        lines.join('\n'),
      );
    } finally {
      client.close();
      await t.close();
    }
  });
});
