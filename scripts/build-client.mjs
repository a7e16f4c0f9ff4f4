// Bundles the client SDK (src/client, Node-free) into ESM files that a page can load with
// <script type="module"> and no bundler (esbuild does what tsc cannot: one file each), in
// build/ (the sample serves them) or dist/ (shipped in the package):
// - pushlet-client-core.js: the core client (src/client/core.ts): subscribe, reconnect, resume,
//   both transports; what most pages need, at the smallest size (aiming under 4 KB gzipped);
// - pushlet-client.js: the full client (src/client/index.ts): the core and publish, presence,
//   refresh.
//   node scripts/build-client.mjs [outDir] [--analyze]
// --analyze (or PUSHLET_CLIENT_SIZE=1) prints each size, minified and gzipped, and with --analyze
// what each source module costs.
import { analyzeMetafile, build } from 'esbuild';
import { gzipSync } from 'node:zlib';
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const analyze = args.includes('--analyze');
const outDir = args.find((arg) => !arg.startsWith('--')) ?? 'build';
const BUNDLES = [
  { entry: 'src/client/core.ts', file: 'pushlet-client-core.js' },
  { entry: 'src/client/index.ts', file: 'pushlet-client.js' },
];
for (const { entry, file } of BUNDLES) {
  const outfile = `${outDir}/${file}`;
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    // Private `#fields` stay native (es2022), so esbuild shortens their names; es2020 would turn
    // them into WeakMaps and make the file larger.
    target: 'es2022',
    minify: true,
    // The core's hooks for the full client (`_send`, `_reply`, …) are internal: shortened too.
    // Each bundle is whole, so the names only need to agree within it.
    mangleProps: /^_[a-z]/,
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
}
