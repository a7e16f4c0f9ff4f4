// The package as an application gets it: `npm pack`, installed into a fresh folder (offline: the
// tarball is extracted and every other package links to or is copied from this repository's
// node_modules, without @types/ws), then the documentation's own examples (marked in README.md
// and docs/*.md) compiled with `tsc --strict` as an ES module app and as a CommonJS app, started,
// and checked for SSE and WebSocket traffic.
// Once with the Nest in node_modules, once with the lowest Nest 12 the peer ranges accept
// (installed by `npm ci` through the `*-lowest` aliases in package.json). Those apps have neither
// prom-client nor @nestjs/terminus (optional peers): the module works without them. Two more apps
// (ES module and CommonJS) have both, and compile, start and scrape the operations example
// (docs/operations.md) through `pushlet-nestjs/metrics` and `pushlet-nestjs/health`, and the Redis
// set-up of docs/distributed.md through `pushlet-nestjs/redis` against a real redis-server, with
// those metrics and health checks. Redis has its own entry: the README apps, which use no Redis,
// must neither load an ioredis module (checked in the running process and on import, ES module and
// CommonJS) nor read an ioredis declaration when they compile (`tsc --listFiles`), so that no
// ioredis release can break their strict compile. Nothing here needs the network.
// PUSHLET_KEEP_CONSUMER=1 keeps the apps in the system's temporary folder for a look.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { request } from './support/app.js';
import { RedisServer } from './support/redis.js';
import { SseClient } from './support/sse-client.js';
import { within } from './support/wait.js';
import { WsClient } from './support/ws-client.js';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const repoModules = join(repo, 'node_modules');

/** The documentation's marked examples (`<!-- consumer-test: file.ts -->` before a ```ts fence, in README.md or docs/*.md). */
const README_FILES = ['orders.service.ts', 'app.module.ts', 'app-config.module.ts', 'orders.controller.ts', 'my-feed.controller.ts'];
/**
 * The operations examples (`<!-- consumer-test-ops: file.ts -->`: docs/operations.md, and the Redis
 * set-up of docs/distributed.md), compiled in the apps that have the optional peers.
 */
const README_OPS_FILES = ['ops.module.ts', 'distributed.module.ts'];
/** Optional peers for metrics and health: left out of the README apps, put in the ops apps. */
const OPTIONAL_OPS_PEERS = ['prom-client', '@nestjs/terminus'];
/**
 * The optional peer for Redis (`pushlet-nestjs/redis`, or the `redis` option). Installed in every
 * app (linked), so that loading none of its modules in the README apps means something.
 */
const IOREDIS = 'ioredis';
/** A module file of ioredis, in a path of the module cache or of `tsc --listFiles`. */
const IOREDIS_FILE = /[\\/]node_modules[\\/]ioredis[\\/]/;
/** The optional peer for NATS JetStream (`pushlet-nestjs/nats`), and a module file of it. */
const NATS = 'nats';
const NATS_FILE = /[\\/]node_modules[\\/]nats[\\/]/;
/** A module file of a CommonJS package the library loads in every app. */
const COMMONJS_DEPENDENCY_FILE = /[\\/]node_modules[\\/](ws|rxjs)[\\/]/;

/**
 * Preloaded (`node --require`) into a process to report, at its exit, every CommonJS module file it
 * loaded: `require.cache` is Node's one module cache for CommonJS, filled by `require` and by an ES
 * module's `import` of a CommonJS package alike. ioredis and every package it loads are CommonJS
 * (Nest 12 is not: the sanity check looks for ws and rxjs, which are), so a load of ioredis from
 * anywhere shows there; and the check is proven able to see it: `pushlet-nestjs/redis` must list
 * ioredis (were ioredis ever an ES module, that would fail, not pass unnoticed).
 */
const LOADED_MODULES_PROBE = `process.on('exit', () => process.stdout.write('\\nLOADED ' + JSON.stringify(Object.keys(require.cache)) + '\\n'));\n`;

/** The module files a process loaded, as the probe reported them. */
function loadedModules(output: string): string[] {
  const line = /^LOADED (.*)$/m.exec(output);
  assert.ok(line, `the probe reported:\n${output}`);
  return JSON.parse(line[1]!) as string[];
}

/** What the lowest-version aliases stand for (package.json devDependencies). */
const LOWEST_ALIASES: Record<string, string> = {
  '@nestjs/common': '@nestjs/common-lowest',
  '@nestjs/core': '@nestjs/core-lowest',
  '@nestjs/platform-express': '@nestjs/platform-express-lowest',
  '@nestjs/platform-ws': '@nestjs/platform-ws-lowest',
  '@nestjs/websockets': '@nestjs/websockets-lowest',
  rxjs: 'rxjs-lowest',
};

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], cwd: string, timeoutMs = 90_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env: { ...process.env, npm_config_update_notifier: 'false' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Packs the library as `npm publish` would (`prepack` builds dist/); returns the tarball's path. */
async function pack(destination: string): Promise<string> {
  const result = await run('npm', ['pack', '--json', '--pack-destination', destination], repo, 240_000);
  assert.equal(result.code, 0, `npm pack failed:\n${result.stdout}\n${result.stderr}`);
  const [info] = JSON.parse(result.stdout.slice(result.stdout.indexOf('['))) as Array<{ filename: string; files: Array<{ path: string }> }>;
  const shipped = info!.files.map((file) => file.path);
  assert.ok(shipped.includes('dist/index.js') && shipped.includes('dist/index.d.ts') && shipped.includes('LICENSE'), shipped.join(', '));
  assert.deepEqual(
    shipped.filter((path) => !/^(dist\/|LICENSE$|README\.md$|package\.json$)/.test(path) || /test|\.tsbuildinfo$/.test(path)),
    [],
    'the package ships dist/, LICENSE, README.md and package.json only',
  );
  return join(destination, info!.filename);
}

/** Where marked examples may be: README.md and every Markdown file of docs/, in that order. */
function documentationFiles(): string[] {
  const docs = join(repo, 'docs');
  const inDocs = existsSync(docs)
    ? readdirSync(docs)
        .filter((name) => name.endsWith('.md'))
        .sort()
        .map((name) => join('docs', name))
    : [];
  return ['README.md', ...inDocs];
}

/**
 * The documentation's examples marked with `marker` (README.md and docs/*.md), by file name. Every
 * expected file must be marked exactly once across all of them, and nothing else marked.
 */
function markedExamples(marker = 'consumer-test', expected = README_FILES): Map<string, string> {
  const files = new Map<string, string>();
  const foundIn = new Map<string, string>();
  for (const document of documentationFiles()) {
    const text = readFileSync(join(repo, document), 'utf8');
    for (const match of text.matchAll(new RegExp(`<!-- ${marker}: ([\\w.-]+) -->\\r?\\n\`\`\`ts\\r?\\n([\\s\\S]*?)\\r?\\n\`\`\``, 'g'))) {
      assert.ok(!files.has(match[1]!), `${match[1]} is marked twice: in ${foundIn.get(match[1]!)} and in ${document}`);
      files.set(match[1]!, `${match[2]}\n`);
      foundIn.set(match[1]!, document);
    }
  }
  assert.deepEqual([...files.keys()].sort(), [...expected].sort(), `the examples marked ${marker} in README.md and docs/*.md`);
  return files;
}

/** Not from the README: the guard it imports, a route to publish with, and the entry point. */
const HARNESS: Record<string, string> = {
  'auth.guard.ts': `
import { Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';

export interface User {
  id: string;
}

/** Lets in requests with an \`x-user\` header, as that user. */
@Injectable()
export class AuthGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    const request = context.switchToHttp().getRequest<{ headers: Record<string, string | undefined>; user?: User }>();
    const id = request.headers['x-user'];
    if (!id) return false;
    request.user = { id };
    return true;
  }
}
`,
  'main.ts': `
import 'reflect-metadata';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Controller, Module, Post, Query, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { WsAdapter } from '@nestjs/platform-ws';
import { PushletService } from 'pushlet-nestjs';
import { AppModule } from './app.module.js';
import { AppModule as ConfigAppModule } from './app-config.module.js';
import { MyFeedController } from './my-feed.controller.js';

@Controller('test')
class PublishController {
  constructor(private readonly pushlet: PushletService) {}

  @Post('publish')
  async publish(@Query('topic') topic: string, @Query('message') message: string): Promise<string> {
    return (await this.pushlet.publish(topic, 'message', message)).id;
  }
}

@Module({ imports: [AppModule], controllers: [MyFeedController, PublishController] })
class WithForRoot {}

@Module({ imports: [ConfigAppModule] })
class WithForRootAsync {}

async function start(app: INestApplication): Promise<string> {
  app.enableShutdownHooks();
  await app.listen(0, '127.0.0.1');
  return (await app.getUrl()).replace('[::1]', '127.0.0.1');
}

async function main(): Promise<void> {
  const forRoot = await start(await NestFactory.create(WithForRoot));
  const configured = await NestFactory.create(WithForRootAsync);
  configured.useWebSocketAdapter(new WsAdapter(configured));
  const forRootAsync = await start(configured);
  // Every CommonJS module file loaded so far (ioredis is CommonJS; see LOADED_MODULES_PROBE).
  const loaded = Object.keys(createRequire(join(process.cwd(), 'main.js')).cache);
  console.log('READY ' + JSON.stringify({ forRoot, forRootAsync, loaded }));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
`,
};

/** An app with the `redis` option, started without ioredis installed (plain JavaScript, no compile). */
const MISSING_IOREDIS_APP = `
import 'reflect-metadata';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { PushletModule } from 'pushlet-nestjs';
class App {}
Module({ imports: [PushletModule.forRoot({ redis: { url: 'redis://127.0.0.1:1' } })] })(App);
await NestFactory.createApplicationContext(App, { logger: false, abortOnError: false });
`;

/** The entry point of the ops apps: the README's OpsModule on a free port, and the Redis set-up of docs/distributed.md with it when REDIS_URL is set. */
const OPS_HARNESS: Record<string, string> = {
  'main.ts': `
import 'reflect-metadata';
import { Module, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { TerminusModule } from '@nestjs/terminus';
import { PushletModule } from 'pushlet-nestjs';
import { PushletHealthModule } from 'pushlet-nestjs/health';
import { PushletMetricsModule } from 'pushlet-nestjs/metrics';
import { Registry } from 'prom-client';
import { DistributedModule } from './distributed.module.js';
import { OpsController, OpsModule } from './ops.module.js';

/** The Redis set-up of docs/distributed.md with the Operations controller, metrics on a registry of its own. */
@Module({
  imports: [DistributedModule, PushletMetricsModule.forRoot({ registry: new Registry() }), TerminusModule, PushletHealthModule],
  controllers: [OpsController],
})
class DistributedOpsModule {}

/** The same Redis through the redis option of pushlet-nestjs (its Redis broker imported at start-up). */
@Module({ imports: [PushletModule.forRoot({ redis: { url: process.env.REDIS_URL, keyPrefix: 'option:', options: { connectionName: 'redis-option' } } })] })
class RedisOptionModule {}

async function start(app: INestApplication): Promise<string> {
  app.enableShutdownHooks();
  await app.listen(0, '127.0.0.1');
  return (await app.getUrl()).replace('[::1]', '127.0.0.1');
}

async function main(): Promise<void> {
  const url = await start(await NestFactory.create(OpsModule, { logger: false }));
  const redis = process.env.REDIS_URL ? await start(await NestFactory.create(DistributedOpsModule, { logger: false })) : undefined;
  const redisOption = process.env.REDIS_URL ? await start(await NestFactory.create(RedisOptionModule, { logger: false })) : undefined;
  console.log('READY ' + JSON.stringify({ forRoot: url, forRootAsync: url, redis, redisOption }));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
`,
};

function tsconfig(moduleSystem: 'esm' | 'cjs'): string {
  const module = moduleSystem === 'esm' ? { module: 'NodeNext', moduleResolution: 'NodeNext' } : { module: 'commonjs' };
  return JSON.stringify(
    {
      compilerOptions: {
        target: 'ES2022',
        ...module,
        lib: ['ES2022'],
        strict: true,
        skipLibCheck: false,
        experimentalDecorators: true,
        emitDecoratorMetadata: true,
        types: ['node'],
        rootDir: 'src',
        outDir: 'dist',
      },
      include: ['src'],
    },
    null,
    2,
  );
}

/**
 * Fills `app/node_modules` from the repository's: every package linked, except this one (the
 * tarball instead), @types/ws (left out on purpose) and, unless `ops`, the optional peers for
 * metrics and health. With `lowest`, the Nest packages and rxjs are copies of the `*-lowest`
 * aliases, and the other Nest packages copies too, so that nothing loads a newer Nest through a
 * link's real path.
 */
function installDependencies(app: string, lowest: boolean, ops: boolean): void {
  const target = join(app, 'node_modules');
  const aliases = new Set(Object.values(LOWEST_ALIASES));
  const place = (name: string) => {
    if (name === 'pushlet-nestjs' || name === '@types/ws' || aliases.has(name)) return;
    if (!ops && OPTIONAL_OPS_PEERS.includes(name)) return;
    const to = join(target, name);
    mkdirSync(dirname(to), { recursive: true });
    const copy = lowest && (name.startsWith('@nestjs/') || name === 'rxjs');
    const from = join(repoModules, copy ? (LOWEST_ALIASES[name] ?? name) : name);
    if (copy) cpSync(from, to, { recursive: true });
    else symlinkSync(from, to, 'dir');
  };
  for (const entry of readdirSync(repoModules)) {
    if (entry.startsWith('.')) continue;
    if (entry.startsWith('@')) for (const scoped of readdirSync(join(repoModules, entry))) place(`${entry}/${scoped}`);
    else place(entry);
  }
}

function versionOf(app: string, name: string): string {
  return (JSON.parse(readFileSync(join(app, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
}

/** Starts the compiled app; resolves to its URLs once it says READY. */
/** What an app's entry point says once it listens: its URLs, and (README apps) the CommonJS module files it loaded. */
interface Ready {
  forRoot: string;
  forRootAsync: string;
  redis?: string;
  redisOption?: string;
  loaded?: string[];
}

async function startApp(app: string, env: NodeJS.ProcessEnv): Promise<{ child: ChildProcess; urls: Ready; output: () => string }> {
  const child = spawn(process.execPath, ['dist/main.js'], { cwd: app, env });
  let output = '';
  const ready = new Promise<Ready>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const line = /^READY (.*)$/m.exec(output);
      if (line) resolve(JSON.parse(line[1]!) as Ready);
    });
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('exit', (code) => reject(new Error(`the app exited with ${code} before it was ready:\n${output}`)));
  });
  try {
    return { child, urls: await within(ready, 30_000, `the app in ${app} to start:\n${output}`), output: () => output };
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
}

async function stopApp(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  await within(exited, 10_000, 'the app to exit').catch(() => child.kill('SIGKILL'));
}

type Nest = 'current' | 'lowest';
type ModuleSystem = 'esm' | 'cjs';
const VARIANTS = (['current', 'lowest'] as const).flatMap((nest) => (['esm', 'cjs'] as const).map((moduleSystem) => ({ nest, moduleSystem })));

/**
 * Writes one app, with the packed library and its dependencies: the README examples and the
 * harness, or (`ops`) the README's Operations example and its entry point, with the optional peers.
 */
async function setUp(root: string, tarball: string, examples: Map<string, string>, nest: Nest, moduleSystem: ModuleSystem, ops = false): Promise<string> {
  const name = `${nest}-${moduleSystem}${ops ? '-ops' : ''}`;
  const app = join(root, name);
  mkdirSync(join(app, 'src'), { recursive: true });
  mkdirSync(join(app, 'node_modules', 'pushlet-nestjs'), { recursive: true });
  const extract = await run('tar', ['-xzf', tarball, '-C', join(app, 'node_modules', 'pushlet-nestjs'), '--strip-components=1'], app);
  assert.equal(extract.code, 0, extract.stderr);
  installDependencies(app, nest === 'lowest', ops);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: `consumer-${name}`, private: true, type: moduleSystem === 'esm' ? 'module' : 'commonjs' }));
  writeFileSync(join(app, 'tsconfig.json'), tsconfig(moduleSystem));
  for (const [file, source] of [...examples, ...Object.entries(ops ? OPS_HARNESS : HARNESS)]) writeFileSync(join(app, 'src', file), source);
  writeFileSync(join(app, 'loaded-modules.cjs'), LOADED_MODULES_PROBE);
  return app;
}

/** Six apps compile at once on what may be two busy cores: each gets up to four minutes. */
const COMPILE_TIMEOUT_MS = 240_000;

interface Compiled extends Run {
  /** Every file tsc read (`--listFiles`), declarations of the packages included. */
  files: string[];
  /** What tsc said besides the file list: its errors. */
  said: string;
}

async function compile(app: string): Promise<Compiled> {
  const result = await run(
    process.execPath,
    [join(app, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json', '--pretty', 'false', '--listFiles'],
    app,
    COMPILE_TIMEOUT_MS,
  );
  const lines = result.stdout.split(/\r?\n/);
  const isFile = (line: string) => /^\/.*\.[cm]?tsx?$/.test(line.trim());
  return { ...result, files: lines.filter(isFile), said: lines.filter((line) => line.trim() && !isFile(line)).join('\n') + result.stderr };
}

describe('the packed library in a fresh app, built from the README examples', () => {
  let root: string;
  const prepared = new Map<string, { app: string; compile: Compiled }>();

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'pushlet-consumer-'));
    const tarball = await pack(root);
    const examples = markedExamples();
    const opsExamples = markedExamples('consumer-test-ops', README_OPS_FILES);
    const names: string[] = [];
    const apps: string[] = [];
    for (const { nest, moduleSystem } of VARIANTS) {
      names.push(`${nest}-${moduleSystem}`);
      apps.push(await setUp(root, tarball, examples, nest, moduleSystem));
    }
    for (const moduleSystem of ['esm', 'cjs'] as const) {
      names.push(`current-${moduleSystem}-ops`);
      apps.push(await setUp(root, tarball, opsExamples, 'current', moduleSystem, true));
    }
    // The apps compile at once: tsc is most of this test's time.
    const compiled = await Promise.all(apps.map(compile));
    names.forEach((name, i) => prepared.set(name, { app: apps[i]!, compile: compiled[i]! }));
  });
  it('declares peer ranges that start at the versions tested as the lowest', () => {
    const manifest = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { peerDependencies: Record<string, string> };
    // reflect-metadata: the library does not use it itself; its range is Nest's own.
    const peers = Object.keys(manifest.peerDependencies).filter(
      (name) => name !== 'reflect-metadata' && name !== IOREDIS && name !== NATS && !OPTIONAL_OPS_PEERS.includes(name),
    );
    assert.deepEqual(peers.sort(), ['@nestjs/common', '@nestjs/core', '@nestjs/platform-ws', '@nestjs/websockets', 'rxjs']);
    for (const name of peers) assert.equal(manifest.peerDependencies[name], `^${versionOf(repo, LOWEST_ALIASES[name]!)}`, name);
  });

  it('declares prom-client and @nestjs/terminus as optional peers, of the majors installed here', () => {
    const manifest = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as {
      peerDependencies: Record<string, string>;
      peerDependenciesMeta: Record<string, { optional?: boolean }>;
    };
    for (const name of OPTIONAL_OPS_PEERS) {
      assert.equal(manifest.peerDependenciesMeta[name]?.optional, true, name);
      assert.equal(manifest.peerDependencies[name], `^${versionOf(repo, name).split('.')[0]}.0.0`, name);
    }
  });

  it("declares ioredis as an optional peer (one copy: a client of the app's own passes its instanceof check), cluster-key-slot as a dependency", () => {
    const manifest = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
      peerDependencies: Record<string, string>;
      peerDependenciesMeta: Record<string, { optional?: boolean }>;
      exports: Record<string, unknown>;
    };
    assert.equal(manifest.peerDependenciesMeta[IOREDIS]?.optional, true);
    assert.equal(manifest.peerDependencies[IOREDIS], `^${versionOf(repo, IOREDIS).split('.')[0]}.0.0`);
    assert.equal(manifest.dependencies[IOREDIS], undefined, 'not a dependency: an app without Redis does not install it');
    assert.ok(manifest.dependencies['cluster-key-slot'], 'cluster-key-slot: the slot function the Redis broker uses (ioredis 6.1 no longer depends on it)');
    assert.deepEqual(manifest.exports['./redis'], { types: './dist/cluster/index.d.ts', default: './dist/cluster/index.js' });
  });

  it('declares nats as an optional peer of the major installed here, with its own entry (pushlet-nestjs/nats)', () => {
    const manifest = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
      peerDependencies: Record<string, string>;
      peerDependenciesMeta: Record<string, { optional?: boolean }>;
      exports: Record<string, unknown>;
    };
    assert.equal(manifest.peerDependenciesMeta[NATS]?.optional, true);
    assert.match(manifest.peerDependencies[NATS]!, new RegExp(`^\\^${versionOf(repo, NATS).split('.')[0]}\\.`));
    assert.equal(manifest.dependencies[NATS], undefined, 'not a dependency: an app without NATS does not install it');
    assert.deepEqual(manifest.exports['./nats'], { types: './dist/nats/index.d.ts', default: './dist/nats/index.js' });
  });

  for (const moduleSystem of ['esm', 'cjs'] as const) {
    it(`${moduleSystem === 'esm' ? 'import()' : 'require()'} of pushlet-nestjs loads no ioredis module; of pushlet-nestjs/redis, ioredis (${moduleSystem === 'esm' ? 'ES module' : 'CommonJS'} app)`, async (t) => {
      const app = prepared.get(`current-${moduleSystem}`)!.app;
      assert.ok(existsSync(join(app, 'node_modules', IOREDIS, 'package.json')), 'ioredis is installed in the app');
      const load = (entry: string) =>
        moduleSystem === 'esm'
          ? `import('${entry}').then((m) => console.log(Object.keys(m).length > 0))`
          : `console.log(Object.keys(require('${entry}')).length > 0)`;
      const main = await run(process.execPath, ['--require', './loaded-modules.cjs', '-e', load('pushlet-nestjs')], app);
      assert.equal(main.code, 0, main.stderr);
      assert.match(main.stdout, /^true$/m);
      const loaded = loadedModules(main.stdout);
      assert.ok(
        loaded.some((file) => COMMONJS_DEPENDENCY_FILE.test(file)),
        'the probe sees the CommonJS packages the library loads (ws, rxjs)',
      );
      assert.deepEqual(
        loaded.filter((file) => IOREDIS_FILE.test(file)),
        [],
        'pushlet-nestjs loads no ioredis module',
      );
      t.diagnostic(`pushlet-nestjs: ${loaded.length} CommonJS module files loaded, none of ioredis`);
      const redis = await run(process.execPath, ['--require', './loaded-modules.cjs', '-e', load('pushlet-nestjs/redis')], app);
      assert.equal(redis.code, 0, redis.stderr);
      const withRedis = loadedModules(redis.stdout).filter((file) => IOREDIS_FILE.test(file));
      assert.ok(withRedis.length > 0, 'pushlet-nestjs/redis loads ioredis, and the probe sees it');
      t.diagnostic(`pushlet-nestjs/redis: ${withRedis.length} ioredis module files loaded`);
      // The same for NATS: the main entry loads none of the NATS client, pushlet-nestjs/nats does.
      assert.ok(existsSync(join(app, 'node_modules', NATS, 'package.json')), 'nats is installed in the app');
      assert.deepEqual(
        loaded.filter((file) => NATS_FILE.test(file)),
        [],
        'pushlet-nestjs loads no module of the NATS client',
      );
      const nats = await run(process.execPath, ['--require', './loaded-modules.cjs', '-e', load('pushlet-nestjs/nats')], app);
      assert.equal(nats.code, 0, nats.stderr);
      const withNats = loadedModules(nats.stdout).filter((file) => NATS_FILE.test(file));
      assert.ok(withNats.length > 0, 'pushlet-nestjs/nats loads the NATS client, and the probe sees it');
      t.diagnostic(`pushlet-nestjs/nats: ${withNats.length} NATS client module files loaded`);
    });
  }

  it('reads no ioredis declaration when an app without Redis compiles (tsc --listFiles), and the Redis one does', () => {
    for (const { nest, moduleSystem } of VARIANTS) {
      const { files } = prepared.get(`${nest}-${moduleSystem}`)!.compile;
      assert.ok(
        files.some((file) => file.includes('/node_modules/pushlet-nestjs/dist/index.d.ts')),
        `${nest}-${moduleSystem}: tsc listed the library's declarations`,
      );
      assert.deepEqual(
        files.filter((file) => IOREDIS_FILE.test(file)),
        [],
        `${nest}-${moduleSystem} reads no ioredis declaration`,
      );
    }
    for (const moduleSystem of ['esm', 'cjs'] as const) {
      const { files } = prepared.get(`current-${moduleSystem}-ops`)!.compile;
      assert.ok(
        files.some((file) => IOREDIS_FILE.test(file)),
        `current-${moduleSystem}-ops (pushlet-nestjs/redis) reads ioredis's declarations`,
      );
    }
  });

  it('loads without ioredis installed; pushlet-nestjs/redis and the redis option say it is needed', async () => {
    const app = prepared.get('current-esm')!.app;
    const link = join(app, 'node_modules', IOREDIS);
    const aside = join(app, 'node_modules', '.ioredis-aside');
    renameSync(link, aside);
    try {
      const main = await run(
        process.execPath,
        ['--input-type=module', '-e', "const m = await import('pushlet-nestjs'); console.log(typeof m.PushletModule)"],
        app,
      );
      assert.equal(main.stdout.trim(), 'function', main.stderr);
      const redis = await run(process.execPath, ['--input-type=module', '-e', "await import('pushlet-nestjs/redis')"], app);
      assert.notEqual(redis.code, 0);
      assert.match(redis.stderr, /Cannot find package 'ioredis'/);
      const option = await run(process.execPath, ['--input-type=module', '-e', MISSING_IOREDIS_APP], app);
      assert.notEqual(option.code, 0);
      assert.match(option.stderr, /the redis option needs the ioredis package, an optional peer dependency of pushlet-nestjs: npm install ioredis/);
    } finally {
      renameSync(aside, link);
    }
  });

  it('loads without prom-client and @nestjs/terminus; only their own entry points need them', async () => {
    const app = prepared.get('current-esm')!.app;
    for (const name of OPTIONAL_OPS_PEERS) assert.equal(existsSync(join(app, 'node_modules', name)), false, `${name} is not installed`);
    const main = await run(
      process.execPath,
      ['--input-type=module', '-e', "const m = await import('pushlet-nestjs'); console.log(typeof m.PushletModule)"],
      app,
    );
    assert.equal(main.stdout.trim(), 'function', main.stderr);
    const metrics = await run(process.execPath, ['--input-type=module', '-e', "await import('pushlet-nestjs/metrics')"], app);
    assert.notEqual(metrics.code, 0);
    assert.match(metrics.stderr, /Cannot find package 'prom-client'/);
    const health = await run(process.execPath, ['--input-type=module', '-e', "await import('pushlet-nestjs/health')"], app);
    assert.notEqual(health.code, 0);
    assert.match(health.stderr, /Cannot find package '@nestjs\/terminus'/);
  });

  it('ships source maps that carry their sources', () => {
    const shipped = join(prepared.get('current-esm')!.app, 'node_modules', 'pushlet-nestjs');
    assert.equal(existsSync(join(shipped, 'src')), false, 'no src/ in the package');
    const map = JSON.parse(readFileSync(join(shipped, 'dist', 'pushlet.service.js.map'), 'utf8')) as { sources: string[]; sourcesContent?: string[] };
    assert.deepEqual(map.sources, ['../src/pushlet.service.ts']);
    assert.match(map.sourcesContent?.[0] ?? '', /export class PushletService/);
  });

  it('ships the client SDK as pushlet-nestjs/client, importing nothing but its own files (no Node, Nest or ws)', async () => {
    const app = prepared.get('current-esm')!.app;
    const shipped = join(app, 'node_modules', 'pushlet-nestjs', 'dist');
    const seen = new Set<string>();
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      for (const [, specifier] of readFileSync(file, 'utf8').matchAll(/(?:from|import)\s*\(?\s*'([^']+)'/g)) {
        assert.match(specifier!, /^\.\.?\//, `${file} imports ${specifier}`);
        visit(join(dirname(file), specifier!));
      }
    };
    visit(join(shipped, 'client', 'index.js'));
    assert.ok(
      [...seen].some((file) => file.includes(`${join('dist', 'protocol')}`)),
      'the client uses the shared wire contract',
    );
    const loaded = await run(
      process.execPath,
      ['--input-type=module', '-e', "const m = await import('pushlet-nestjs/client'); console.log(typeof m.PushletClient)"],
      app,
    );
    assert.equal(loaded.stdout.trim(), 'function', loaded.stderr);
  });

  after(() => {
    if (root && !process.env.PUSHLET_KEEP_CONSUMER) rmSync(root, { recursive: true, force: true });
  });

  for (const moduleSystem of ['esm', 'cjs'] as const) {
    describe(`${moduleSystem === 'esm' ? 'ES module' : 'CommonJS'} app with prom-client, @nestjs/terminus and ioredis: the Operations example, and the Redis set-up on a real redis-server`, () => {
      let started: Awaited<ReturnType<typeof startApp>> | undefined;
      let redisServer: RedisServer | undefined;
      const clients: Array<{ close(): void }> = [];
      after(async () => {
        for (const client of clients.splice(0)) client.close();
        await stopApp(started?.child);
        await redisServer?.stop();
      });

      it('compiles with tsc --strict, importing pushlet-nestjs/metrics, pushlet-nestjs/health and pushlet-nestjs/redis', () => {
        const { compile } = prepared.get(`current-${moduleSystem}-ops`)!;
        assert.equal(compile.code, 0, compile.said);
        assert.equal(compile.said.trim(), '', 'tsc said nothing but the file list');
      });

      it('serves /metrics with the connections it holds, /health and /health/live', async () => {
        redisServer = await RedisServer.start();
        started = await startApp(prepared.get(`current-${moduleSystem}-ops`)!.app, { ...process.env, REDIS_URL: redisServer.url });
        const url = started.urls.forRoot;
        const sse = await SseClient.open(`${url}/events?topic=ops`);
        clients.push(sse);
        await sse.waitForEvents(1, 5_000, 'pushlet:connected');
        const metrics = await request(`${url}/metrics`);
        assert.equal(metrics.status, 200);
        assert.match(metrics.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
        assert.match(metrics.body, /^pushlet_connections\{transport="sse"\} 1$/m);
        assert.match(metrics.body, /^pushlet_broker_up 1$/m);
        const ready = await request(`${url}/health`);
        assert.equal(ready.status, 200, ready.body);
        assert.equal(JSON.parse(ready.body).details.pushlet.status, 'up');
        assert.equal((await request(`${url}/health/live`)).status, 200);
      });

      it('the Redis set-up (redisBroker of pushlet-nestjs/redis) runs on the redis-server, with its metrics and health; so does the redis option', async () => {
        assert.ok(started?.urls.redis, 'the app started the Redis set-up');
        const url = started.urls.redis;
        const sse = await SseClient.open(`${url}/events?topic=ops`);
        clients.push(sse);
        await sse.waitForEvents(1, 5_000, 'pushlet:connected');
        const metrics = await request(`${url}/metrics`);
        assert.match(metrics.body, /^pushlet_connections\{transport="sse"\} 1$/m);
        assert.match(metrics.body, /^pushlet_broker_up 1$/m);
        assert.match(metrics.body, /^pushlet_broker_queued 0$/m);
        const ready = await request(`${url}/health`);
        assert.equal(ready.status, 200, ready.body);
        assert.deepEqual(JSON.parse(ready.body).details.pushlet, { status: 'up', broker: 'ready', queued: 0, connections: 1 });
        // Connected to this redis-server, with the ioredis options the example gives (typed RedisOptions).
        const client = new Redis(redisServer!.port, { lazyConnect: true });
        try {
          await client.connect();
          const list = String(await client.client('LIST'));
          assert.match(list, /name=orders-api /, list);
          // And the redis option of pushlet-nestjs, in the same packed library (ES module or required).
          assert.ok(started.urls.redisOption, 'the app started the redis option module');
          assert.match(list, /name=redis-option /, list);
        } finally {
          client.disconnect();
        }
      });
    });
  }

  for (const { nest, moduleSystem } of VARIANTS) {
    describe(`${moduleSystem === 'esm' ? 'ES module' : 'CommonJS'} app, ${nest} Nest`, () => {
      let app: string;
      let compile: Compiled;
      let started: Awaited<ReturnType<typeof startApp>> | undefined;
      const clients: Array<{ close(): void }> = [];

      before(() => {
        ({ app, compile } = prepared.get(`${nest}-${moduleSystem}`)!);
      });
      after(async () => {
        for (const client of clients.splice(0)) client.close();
        await stopApp(started?.child);
      });
      it(`uses ${nest === 'lowest' ? 'the lowest supported' : 'the installed'} Nest, and no @types/ws`, (t) => {
        const versions = Object.fromEntries(
          ['@nestjs/common', '@nestjs/core', '@nestjs/platform-express', '@nestjs/platform-ws', 'rxjs'].map((name) => [name, versionOf(app, name)]),
        );
        t.diagnostic(`versions: ${JSON.stringify(versions)}`);
        const expected = (name: string) => versionOf(repo, nest === 'lowest' ? LOWEST_ALIASES[name]! : name);
        for (const name of Object.keys(versions)) assert.equal(versions[name], expected(name), name);
        assert.equal(existsSync(join(app, 'node_modules', '@types', 'ws')), false);
      });

      it('compiles with tsc --strict with no error at all (no declaration needs @types/ws)', () => {
        assert.equal(compile.code, 0, compile.said);
        assert.equal(compile.said.trim(), '', 'tsc said nothing but the file list');
        assert.ok(existsSync(join(app, 'dist', 'main.js')), 'tsc emitted the app');
      });

      it('starts both README modules (the environment ones as strings, REDIS_URL unset)', async () => {
        const env: NodeJS.ProcessEnv = { ...process.env, PUSHLET_HEARTBEAT_MS: '200' };
        delete env.REDIS_URL;
        started = await startApp(app, env);
        assert.match(started.output(), /distributed mode is off/);
        assert.ok(
          started.urls.loaded!.some((file) => COMMONJS_DEPENDENCY_FILE.test(file)),
          'the app reports its CommonJS modules (ws, rxjs)',
        );
        assert.deepEqual(
          started.urls.loaded!.filter((file) => IOREDIS_FILE.test(file)),
          [],
          'the running app, with the redis option but no Redis named, loaded no ioredis module',
        );
        assert.equal(started.output().match(/distributed mode is off/g)!.length, 1, 'one line, from the forRootAsync module');
      });

      it('Orders.ship publishes once over SSE and WebSocket; @PushletPublish publishes the cancel', async () => {
        assert.ok(started, 'the app started');
        const { forRoot } = started.urls;
        const sse = await SseClient.open(`${forRoot}/events?topic=orders/42`);
        clients.push(sse);
        const ws = await WsClient.open(`${forRoot.replace(/^http/, 'ws')}/ws?topic=orders/42`);
        clients.push(ws);
        await sse.waitForEvents(1, 5_000, 'pushlet:connected');
        await ws.waitForEvents('pushlet:connected');

        const shipped = await request(`${forRoot}/orders/42/ship`, { method: 'POST' });
        assert.equal(shipped.status, 201, shipped.body);
        assert.deepEqual(JSON.parse(shipped.body), { id: '42', status: 'shipped' });
        const cancelled = await request(`${forRoot}/orders/42/cancel`, { method: 'POST' });
        assert.equal(cancelled.status, 201, cancelled.body);

        await sse.waitForEvents(1, 5_000, 'cancelled');
        await ws.waitForEvents('cancelled');
        assert.deepEqual(
          sse.messages.map((e) => [e.event, JSON.parse(e.data)]),
          [
            ['shipped', { id: '42', status: 'shipped' }],
            ['cancelled', { id: '42', status: 'cancelled' }],
          ],
        );
        assert.deepEqual(
          ws.messages.map((m) => [m.event, m.topic, m.data]),
          [
            ['shipped', 'orders/42', '{"id":"42","status":"shipped"}'],
            ['cancelled', 'orders/42', '{"id":"42","status":"cancelled"}'],
          ],
        );
      });

      it('serves the README feed route behind its guard', async () => {
        assert.ok(started, 'the app started');
        const { forRoot } = started.urls;
        assert.equal((await request(`${forRoot}/me/feed`)).status, 403);
        const feed = await SseClient.open(`${forRoot}/me/feed`, { 'x-user': 'u1' });
        clients.push(feed);
        assert.equal(feed.status, 200);
        await feed.waitForEvents(1, 5_000, 'pushlet:connected');
        assert.equal((await request(`${forRoot}/test/publish?topic=users/u1/notifications&message=hi`, { method: 'POST' })).status, 201);
        const [message] = await feed.waitForEvents(1, 5_000, 'message');
        assert.equal(message!.data, 'hi');
      });

      it('forRootAsync from the environment: string heartbeat, WebSocket through WsAdapter', async () => {
        assert.ok(started, 'the app started');
        const { forRootAsync } = started.urls;
        const sse = await SseClient.open(`${forRootAsync}/events?topic=orders/7`);
        clients.push(sse);
        const ws = await WsClient.open(`${forRootAsync.replace(/^http/, 'ws')}/ws?topic=orders/7`);
        clients.push(ws);
        await ws.waitForEvents('pushlet:connected');
        await sse.waitForComments(1, 3_000); // every 200 ms, from the string "200"
        await ws.waitForPings(1, 3_000);
        assert.equal((await request(`${forRootAsync}/orders/7/ship`, { method: 'POST' })).status, 201);
        const [viaWs] = await ws.waitForEvents('shipped');
        assert.equal(viaWs!.data, '{"id":"7","status":"shipped"}');
        const [viaSse] = await sse.waitForEvents(1, 5_000, 'shipped');
        assert.equal(viaSse!.data, '{"id":"7","status":"shipped"}');
      });
    });
  }
});
