// Bundles the client SDK (src/client, Node-free) into one ESM file that a page can load with
// <script type="module"> and no bundler: build/pushlet-client.js (the sample serves it) or
// dist/pushlet-client.js (shipped in the package). esbuild does what tsc cannot: one file.
//   node scripts/build-client.mjs [outDir] [--analyze]
// --analyze (or PUSHLET_CLIENT_SIZE=1) prints the size, minified and gzipped, and with --analyze
// what each source module costs.
import { analyzeMetafile, build } from 'esbuild';
import { gzipSync } from 'node:zlib';
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const analyze = args.includes('--analyze');
const outDir = args.find((arg) => !arg.startsWith('--')) ?? 'build';
const outfile = `${outDir}/pushlet-client.js`;
const result = await build({
  entryPoints: ['src/client/index.ts'],
  bundle: true,
  format: 'esm',
  platform: 'browser',
  // Private `#fields` stay native (es2022), so esbuild shortens their names; es2020 would turn
  // them into WeakMaps and make the file larger.
  target: 'es2022',
  minify: true,
  legalComments: 'none',
  sourcemap: false,
  metafile: analyze,
  outfile,
  logLevel: 'warning',
});
if (analyze || process.env.PUSHLET_CLIENT_SIZE) {
  const bytes = readFileSync(outfile);
  console.log(`${outfile}: ${bytes.length} B minified, ${gzipSync(bytes, { level: 9 }).length} B gzipped (level 9)`);
}
if (analyze) console.log(await analyzeMetafile(result.metafile));
