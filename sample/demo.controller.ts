import { readFileSync } from 'node:fs';
import { Controller, Get, Header } from '@nestjs/common';

const page = readFileSync(new URL('../../sample/public/index.html', import.meta.url), 'utf8');
// The client SDK as one ESM file, built next to the compiled sample by `npm run build:all`.
const clientBundle = new URL('../pushlet-client.js', import.meta.url);

/** Serves the demo page (the client SDK, and the README's plain SSE and WebSocket clients) and the SDK as one file for pages. */
@Controller()
export class DemoController {
  @Get()
  @Header('Content-Type', 'text/html; charset=utf-8')
  index(): string {
    return page;
  }

  /** `GET /pushlet-client.js`: `import { PushletClient } from '/pushlet-client.js'` in a page. */
  @Get('pushlet-client.js')
  @Header('Content-Type', 'text/javascript; charset=utf-8')
  @Header('Cache-Control', 'no-cache')
  client(): string {
    return readFileSync(clientBundle, 'utf8');
  }
}
