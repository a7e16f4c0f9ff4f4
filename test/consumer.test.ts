// The package as an application gets it: `npm pack`, installed into a fresh folder (offline: the
// tarball is extracted and every other package links to or is copied from this repository's
// node_modules, without @types/ws), then the documentation's own examples (marked in README.md
// and docs/*.md) compiled with `tsc --strict` as an ES module app and as a CommonJS app, started,
// and checked for SSE and WebSocket traffic.
// Once with the Nest in node_modules, once with the lowest Nest 12 the peer ranges accept
// (installed by `npm ci` through the `*-lowest` aliases in package.json). Those apps have neither
// prom-client nor @nestjs/terminus (optional peers): the module works without them. Two more apps
// (ES module and CommonJS) have both, and compile, start and scrape the operations example
// (docs/operations.md) through `pushlet-nestjs/metrics` and `pushlet-nestjs/health`. Nothing here needs the
// network. PUSHLET_KEEP_CONSUMER=1 keeps the apps in the system's temporary folder for a look.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { request } from './support/app.js';
import { SseClient } from './support/sse-client.js';
import { within } from './support/wait.js';
import { WsClient } from './support/ws-client.js';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const repoModules = join(repo, 'node_modules');

/** The documentation's marked examples (`<!-- consumer-test: file.ts -->` before a ```ts fence, in README.md or docs/*.md). */
const README_FILES = ['orders.service.ts', 'app.module.ts', 'app-config.module.ts', 'orders.controller.ts', 'my-feed.controller.ts'];
/** The operations examples (`<!-- consumer-test-ops: file.ts -->`, docs/operations.md), compiled in the apps that have the optional peers. */
const README_OPS_FILES = ['ops.module.ts'];
/** Optional peers for metrics and health: left out of the README apps, put in the ops apps. */
const OPTIONAL_OPS_PEERS = ['prom-client', '@nestjs/terminus'];

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
  console.log('READY ' + JSON.stringify({ forRoot, forRootAsync }));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
`,
};

/** The entry point of the ops apps: the README's OpsModule on a free port. */
const OPS_HARNESS: Record<string, string> = {
  'main.ts': `
import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { OpsModule } from './ops.module.js';

async function main(): Promise<void> {
  const app = await NestFactory.create(OpsModule, { logger: false });
  app.enableShutdownHooks();
  await app.listen(0, '127.0.0.1');
  const url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
  console.log('READY ' + JSON.stringify({ forRoot: url, forRootAsync: url }));
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
async function startApp(app: string, env: NodeJS.ProcessEnv): Promise<{ child: ChildProcess; urls: { forRoot: string; forRootAsync: string }; output: () => string }> {
  const child = spawn(process.execPath, ['dist/main.js'], { cwd: app, env });
  let output = '';
  const ready = new Promise<{ forRoot: string; forRootAsync: string }>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const line = /^READY (.*)$/m.exec(output);
      if (line) resolve(JSON.parse(line[1]!) as { forRoot: string; forRootAsync: string });
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
  return app;
}

/** Six apps compile at once on what may be two busy cores: each gets up to four minutes. */
const COMPILE_TIMEOUT_MS = 240_000;

function compile(app: string): Promise<Run> {
  return run(process.execPath, [join(app, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json', '--pretty', 'false'], app, COMPILE_TIMEOUT_MS);
}

describe('the packed library in a fresh app, built from the README examples', () => {
  let root: string;
  const prepared = new Map<string, { app: string; compile: Run }>();

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
    const peers = Object.keys(manifest.peerDependencies).filter((name) => name !== 'reflect-metadata' && !OPTIONAL_OPS_PEERS.includes(name));
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

  it('loads without prom-client and @nestjs/terminus; only their own entry points need them', async () => {
    const app = prepared.get('current-esm')!.app;
    for (const name of OPTIONAL_OPS_PEERS) assert.equal(existsSync(join(app, 'node_modules', name)), false, `${name} is not installed`);
    const main = await run(process.execPath, ['--input-type=module', '-e', "const m = await import('pushlet-nestjs'); console.log(typeof m.PushletModule)"], app);
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
    assert.ok([...seen].some((file) => file.includes(`${join('dist', 'protocol')}`)), 'the client uses the shared wire contract');
    const loaded = await run(process.execPath, ['--input-type=module', '-e', "const m = await import('pushlet-nestjs/client'); console.log(typeof m.PushletClient)"], app);
    assert.equal(loaded.stdout.trim(), 'function', loaded.stderr);
  });

  after(() => {
    if (root && !process.env.PUSHLET_KEEP_CONSUMER) rmSync(root, { recursive: true, force: true });
  });

  for (const moduleSystem of ['esm', 'cjs'] as const) {
    describe(`${moduleSystem === 'esm' ? 'ES module' : 'CommonJS'} app with prom-client and @nestjs/terminus: the README's Operations example`, () => {
      let started: Awaited<ReturnType<typeof startApp>> | undefined;
      const clients: Array<{ close(): void }> = [];
      after(async () => {
        for (const client of clients.splice(0)) client.close();
        await stopApp(started?.child);
      });

      it('compiles with tsc --strict, importing pushlet-nestjs/metrics and pushlet-nestjs/health', () => {
        const { compile } = prepared.get(`current-${moduleSystem}-ops`)!;
        assert.equal(compile.code, 0, compile.stdout + compile.stderr);
      });

      it('serves /metrics with the connections it holds, /health and /health/live', async () => {
        started = await startApp(prepared.get(`current-${moduleSystem}-ops`)!.app, { ...process.env });
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
    });
  }

  for (const { nest, moduleSystem } of VARIANTS) {
    describe(`${moduleSystem === 'esm' ? 'ES module' : 'CommonJS'} app, ${nest} Nest`, () => {
      let app: string;
      let compile: Run;
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
        const versions = Object.fromEntries(['@nestjs/common', '@nestjs/core', '@nestjs/platform-express', '@nestjs/platform-ws', 'rxjs'].map((name) => [name, versionOf(app, name)]));
        t.diagnostic(`versions: ${JSON.stringify(versions)}`);
        const expected = (name: string) => versionOf(repo, nest === 'lowest' ? LOWEST_ALIASES[name]! : name);
        for (const name of Object.keys(versions)) assert.equal(versions[name], expected(name), name);
        assert.equal(existsSync(join(app, 'node_modules', '@types', 'ws')), false);
      });

      it('compiles with tsc --strict with no error at all (no declaration needs @types/ws)', () => {
        assert.equal(compile.code, 0, compile.stdout + compile.stderr);
        assert.ok(existsSync(join(app, 'dist', 'main.js')), 'tsc emitted the app');
      });

      it('starts both README modules (the environment ones as strings, REDIS_URL unset)', async () => {
        const env: NodeJS.ProcessEnv = { ...process.env, PUSHLET_HEARTBEAT_MS: '200' };
        delete env.REDIS_URL;
        started = await startApp(app, env);
        assert.match(started.output(), /distributed mode is off/);
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
