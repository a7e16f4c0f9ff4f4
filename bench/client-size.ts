/**
 * `client-size`: what a page downloads for the client SDK, next to the client libraries a user
 * would pick instead. Each file is measured minified, gzipped (level 9) and brotli-compressed
 * (quality 11), the same way for all:
 * - this SDK: `build/pushlet-client-core.js` and `build/pushlet-client.js`, the one-file ESM builds
 *   (`scripts/build-client.mjs`, the same script that writes them to `dist/`), as `npm run build:all` left them;
 * - centrifuge (centrifuge-js) and socket.io-client as shipped for pages (`dist/centrifuge.js`,
 *   JSON protocol only; `dist/socket.io.esm.min.js`), and their ESM entry bundled with this
 *   SDK's own esbuild settings (browser, ES2022, minified), so that the minifier is the same.
 */
import { build } from 'esbuild';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';
import { col, measureRow, type Row, type Scenario } from './lib/scenario.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const require = createRequire(import.meta.url);

/** The SDK bundle's esbuild settings (scripts/build-client.mjs), for the peers' ESM entries. */
const BUNDLE_SETTINGS = {
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  minify: true,
  legalComments: 'none',
  write: false,
  logLevel: 'silent',
} as const;

interface Candidate {
  id: string;
  label: string;
  pushlet: boolean;
  /** The file's text, or why it could not be had. */
  load(): Promise<string>;
}

/** A package's folder, found from its main entry (some export no `./package.json`). */
function packageDir(name: string): string {
  let dir = dirname(require.resolve(name));
  while (!dir.endsWith(`node_modules/${name}`)) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`cannot find the folder of ${name}`);
    dir = parent;
  }
  return dir;
}

function version(name: string): string {
  return (JSON.parse(readFileSync(join(packageDir(name), 'package.json'), 'utf8')) as { version: string }).version;
}

async function bundled(source: string): Promise<string> {
  const result = await build({ ...BUNDLE_SETTINGS, stdin: { contents: source, resolveDir: ROOT, loader: 'js' }, outfile: 'peer.js' });
  return result.outputFiles[0]!.text;
}

function candidates(): Candidate[] {
  const [centrifuge, socketio] = [version('centrifuge'), version('socket.io-client')];
  const file = (path: string) => async () => readFileSync(path, 'utf8');
  const entry = (id: string, label: string, load: () => Promise<string>, pushlet = false): Candidate => ({ id, label, pushlet, load });
  return [
    entry('pushlet-core', 'Pushlet core client (pushlet-client-core.js)', file(join(ROOT, 'build/pushlet-client-core.js')), true),
    entry('pushlet', 'Pushlet client (pushlet-client.js)', file(join(ROOT, 'build/pushlet-client.js')), true),
    entry('centrifuge', `centrifuge ${centrifuge} (dist/centrifuge.js)`, file(join(packageDir('centrifuge'), 'dist/centrifuge.js'))),
    entry('centrifuge-esbuild', `centrifuge ${centrifuge} (ESM, same esbuild)`, () => bundled(`export { Centrifuge } from 'centrifuge';`)),
    entry('socketio', `socket.io-client ${socketio} (dist/socket.io.esm.min.js)`, file(join(packageDir('socket.io-client'), 'dist/socket.io.esm.min.js'))),
    entry('socketio-esbuild', `socket.io-client ${socketio} (ESM, same esbuild)`, () => bundled(`export { io } from 'socket.io-client';`)),
  ];
}

export function sizes(text: string): { minifiedB: number; gzipB: number; brotliB: number } {
  const bytes = Buffer.from(text);
  return {
    minifiedB: bytes.length,
    gzipB: gzipSync(bytes, { level: 9 }).length,
    brotliB: brotliCompressSync(bytes, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }).length,
  };
}

export const clientSize: Scenario = {
  id: 'client-size',
  async rows() {
    const rows: Row[] = [];
    for (const candidate of candidates()) {
      rows.push(
        await measureRow({ peer: candidate.id, label: candidate.label, pushlet: candidate.pushlet }, async () => ({ metrics: sizes(await candidate.load()) })),
      );
      console.log(`  ${candidate.label.padEnd(52)} ${rows.at(-1)!.metrics.minifiedB ?? '–'} B, ${rows.at(-1)!.metrics.gzipB ?? '–'} B gzipped`);
    }
    return rows;
  },
  title: () => 'Client library size',
  description: () =>
    'Bytes a page downloads for the client library: the file minified, then gzipped (level 9) and brotli-compressed (quality 11). ' +
    'This SDK is its two one-file ESM builds (`build/pushlet-client-core.js`, the core, and `build/pushlet-client.js`, the full client, as shipped in `dist/`); the peers as shipped for pages, and their ESM entry ' +
    "(`Centrifuge`, `io`) bundled with this SDK's esbuild settings (browser, ES2022, minified). centrifuge uses its JSON protocol build.",
  params: () => ({ gzipLevel: 9, brotliQuality: 11 }),
  columns: [col('minifiedB', 'minified B', undefined, 'lower'), col('gzipB', 'gzip B', undefined, 'lower'), col('brotliB', 'brotli B', undefined, 'lower')],
};
