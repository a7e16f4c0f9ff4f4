import { All, Controller, Header, HttpCode, Query } from '@nestjs/common';
import { PushletService } from '../src/index.js';

/** The sample's publishing routes (PROTOCOL.md, "The sample app"). */
@Controller()
export class SendController {
  constructor(private readonly pushlet: PushletService) {}

  @All('send')
  @HttpCode(200)
  @Header('Content-Type', 'text/plain; charset=utf-8')
  async send(@Query('topic') topic?: string, @Query('event') event?: string, @Query('message') message?: string): Promise<string> {
    await this.pushlet.publish(topic || 'default', event || 'message', message ?? '');
    return 'Message sent';
  }

  @All('broadcast')
  @HttpCode(200)
  @Header('Content-Type', 'text/plain; charset=utf-8')
  async broadcast(@Query('event') event?: string, @Query('message') message?: string): Promise<string> {
    await this.pushlet.publishToAll(event || 'message', message ?? '');
    return 'Message sent';
  }
}
