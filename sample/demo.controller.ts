import { readFileSync } from 'node:fs';
import { Controller, Get, Header } from '@nestjs/common';

const page = readFileSync(new URL('../../sample/public/index.html', import.meta.url), 'utf8');
const chatPage = readFileSync(new URL('../../sample/public/chat.html', import.meta.url), 'utf8');
// The client SDK as one ESM file each, built next to the compiled sample by `npm run build:all`:
// the full client, and the core one (subscribe, reconnect, resume) that the demo page uses.
const clientBundle = new URL('../pushlet-client.js', import.meta.url);
const coreBundle = new URL('../pushlet-client-core.js', import.meta.url);

/** Serves the demo pages (the client SDK, the README's plain SSE and WebSocket clients, the chat) and the SDK as one file for pages. */
@Controller()
export class DemoController {
  @Get()
  @Header('Content-Type', 'text/html; charset=utf-8')
  index(): string {
    return page;
  }

  /** `GET /chat`: rooms with who is online, on the client SDK (presence and client publishing). */
  @Get('chat')
  @Header('Content-Type', 'text/html; charset=utf-8')
  chat(): string {
    return chatPage;
  }

  /** `GET /pushlet-client.js`: `import { PushletClient } from '/pushlet-client.js'` in a page. */
  @Get('pushlet-client.js')
  @Header('Content-Type', 'text/javascript; charset=utf-8')
  @Header('Cache-Control', 'no-cache')
  client(): string {
    return readFileSync(clientBundle, 'utf8');
  }

  /** `GET /pushlet-client-core.js`: the core client alone (no publish, presence or refresh), for pages that only subscribe. */
  @Get('pushlet-client-core.js')
  @Header('Content-Type', 'text/javascript; charset=utf-8')
  @Header('Cache-Control', 'no-cache')
  core(): string {
    return readFileSync(coreBundle, 'utf8');
  }
}
