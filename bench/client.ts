/**
 * `npm run bench:client`: the client SDK's scenarios alone (`client-size`, `client-reconnect`;
 * `--only=` picks one), with every knob of `npm run bench`. Writes bench/results/client.{md,json}
 * (`client-partial.*` for a quick or narrowed run), which the figures of docs/performance.md come from.
 */
import { bench } from './run.js';

await bench({ ids: ['client-size', 'client-reconnect'], title: 'Client SDK benchmark results', base: 'client', command: 'npm run bench:client' });
