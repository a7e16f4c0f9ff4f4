// Bundles the client SDK (src/client, Node-free) into one ESM file that a page can load with
// <script type="module"> and no bundler: build/pushlet-client.js (the sample serves it) or
// dist/pushlet-client.js (shipped in the package). esbuild does what tsc cannot: one file.
import { build } from 'esbuild';
import { gzipSync } from 'node:zlib';
import { readFileSync } from 'node:fs';

const outDir = process.argv[2] ?? 'build';
const outfile = `${outDir}/pushlet-client.js`;
await build({
  entryPoints: ['src/client/index.ts'],
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  minify: true,
  sourcemap: false,
  outfile,
  logLevel: 'warning',
});
if (process.env.PUSHLET_CLIENT_SIZE) {
  const bytes = readFileSync(outfile);
  console.log(`${outfile}: ${bytes.length} B minified, ${gzipSync(bytes).length} B gzipped`);
}
