import { BadRequestException, Controller, Get, Header, Query, Res, ServiceUnavailableException } from '@nestjs/common';
import { HealthCheck, HealthCheckService } from '@nestjs/terminus';
import { PushletService, PushletUnavailableError, PushletValidationError, type PresenceData, type PushletStats } from '../src/index.js';
import { PushletHealthIndicator } from '../src/health/index.js';
import { PushletMetrics } from '../src/metrics/index.js';

/** `GET /metrics`: Prometheus text of the app's registry (docs/operations.md). */
@Controller()
export class MetricsController {
  constructor(private readonly metrics: PushletMetrics) {}

  @Get('metrics')
  async scrape(@Res({ passthrough: true }) response: { setHeader(name: string, value: string): unknown }): Promise<string> {
    response.setHeader('Content-Type', this.metrics.contentType);
    return this.metrics.metrics();
  }
}

/**
 * `GET /health`: readiness through Terminus (503 while the broker is down or its queue is past
 * 1000); `GET /health/live`: liveness (up while the process answers). `GET /stats`: the JSON of
 * `PushletService.stats({ topics: true })`, cheap enough for a page to poll every second.
 */
@Controller()
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly indicator: PushletHealthIndicator,
    private readonly pushlet: PushletService,
  ) {}

  @Get('health')
  @HealthCheck()
  ready() {
    return this.health.check([() => this.indicator.readiness('pushlet')]);
  }

  @Get('health/live')
  @HealthCheck()
  live() {
    return this.health.check([() => this.indicator.liveness('pushlet')]);
  }

  @Get('stats')
  @Header('Cache-Control', 'no-store')
  stats(): PushletStats {
    return this.pushlet.stats({ topics: true });
  }
}

/**
 * `GET /presence?topic=room/lobby`: the JSON of `PushletService.presence(topic)`, across every
 * instance. A topic that is not a presence topic (or no topic) answers 400, Redis unreachable 503,
 * both as `{ statusCode, message }`.
 */
@Controller()
export class PresenceController {
  constructor(private readonly pushlet: PushletService) {}

  @Get('presence')
  @Header('Cache-Control', 'no-store')
  async presence(@Query('topic') topic: unknown): Promise<PresenceData> {
    if (typeof topic !== 'string') throw new BadRequestException('topic must be given once, e.g. /presence?topic=room/lobby');
    try {
      return await this.pushlet.presence(topic);
    } catch (error) {
      if (error instanceof PushletValidationError) throw new BadRequestException(error.message);
      if (error instanceof PushletUnavailableError) throw new ServiceUnavailableException(error.message);
      throw error;
    }
  }
}
