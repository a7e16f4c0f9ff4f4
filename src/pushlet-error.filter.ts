import { Catch, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { httpStatusOf, PushletError } from './core/errors.js';

/**
 * Answers the module's errors on HTTP as `{ statusCode, message }`: 400 for bad input, 401 for
 * a refused identity, 403 for a refused topic, 503 for a limit (`httpStatusOf`). Register it globally (`app.useGlobalFilters(new
 * PushletErrorFilter(app.get(HttpAdapterHost)))`) or on the controllers that publish.
 */
@Catch(PushletError)
export class PushletErrorFilter implements ExceptionFilter {
  constructor(private readonly adapterHost: HttpAdapterHost) {}

  catch(error: PushletError, host: ArgumentsHost): void {
    const statusCode = httpStatusOf(error) ?? 400;
    const response = host.switchToHttp().getResponse();
    this.adapterHost.httpAdapter.setHeader(response, 'Content-Type', 'application/json; charset=utf-8');
    this.adapterHost.httpAdapter.reply(response, { statusCode, message: error.message }, statusCode);
  }
}
