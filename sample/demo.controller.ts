import { readFileSync } from 'node:fs';
import { Controller, Get, Header } from '@nestjs/common';

const page = readFileSync(new URL('../../sample/public/index.html', import.meta.url), 'utf8');

/** Serves the demo page with the README's SSE and WebSocket clients. */
@Controller()
export class DemoController {
  @Get()
  @Header('Content-Type', 'text/html; charset=utf-8')
  index(): string {
    return page;
  }
}
