import { Controller, Get, Inject, Module, Res, type DynamicModule, type ModuleMetadata } from '@nestjs/common';
import { HealthCheck, HealthCheckService, TerminusModule } from '@nestjs/terminus';
import type { Registry } from 'prom-client';
import { PushletModule, type PushletModuleOptions } from '../../src/index.js';
import { PushletHealthIndicator, PushletHealthModule, type PushletReadinessOptions } from '../../src/health/index.js';
import { PushletMetrics, PushletMetricsModule } from '../../src/metrics/index.js';
import { request } from './app.js';

/**
 * Apps with the metrics and health entry points mounted as the example of docs/operations.md
 * mounts them: `GET /metrics` (Prometheus text of the app's registry), `GET /health` (readiness
 * through Terminus) and `GET /health/live`.
 */

const READINESS = Symbol('readiness options');

interface HeaderSetter {
  setHeader(name: string, value: string): unknown;
}

@Controller()
class OpsController {
  constructor(
    private readonly metrics: PushletMetrics,
    private readonly health: HealthCheckService,
    private readonly indicator: PushletHealthIndicator,
    @Inject(READINESS) private readonly readiness: PushletReadinessOptions,
  ) {}

  @Get('metrics')
  async scrape(@Res({ passthrough: true }) response: HeaderSetter): Promise<string> {
    response.setHeader('Content-Type', this.metrics.contentType);
    return this.metrics.metrics();
  }

  @Get('health')
  @HealthCheck()
  ready() {
    return this.health.check([() => this.indicator.readiness('pushlet', this.readiness)]);
  }

  @Get('health/live')
  @HealthCheck()
  live() {
    return this.health.check([() => this.indicator.liveness('pushlet')]);
  }
}

@Module({})
class OpsModule {
  static register(registry: Registry, readiness: PushletReadinessOptions): DynamicModule {
    return {
      module: OpsModule,
      imports: [PushletMetricsModule.forRoot({ registry }), TerminusModule, PushletHealthModule],
      providers: [{ provide: READINESS, useValue: readiness }],
      controllers: [OpsController],
    };
  }
}

/**
 * The module metadata of an app with Pushlet (`options`), its metrics on `registry`, and the ops
 * routes (`readiness`: the options of `/health`).
 */
export function opsApp(options: PushletModuleOptions, registry: Registry, readiness: PushletReadinessOptions = {}): { metadata: ModuleMetadata } {
  return { metadata: { imports: [PushletModule.forRoot(options), OpsModule.register(registry, readiness)] } };
}

/** Every sample of a scrape, by series (`name{label="value"}`, labels as the registry writes them). */
export type Scrape = Map<string, number>;

/** `GET /metrics`, parsed. */
export async function scrape(url: string): Promise<Scrape> {
  const response = await request(`${url}/metrics`);
  if (response.status !== 200) throw new Error(`GET /metrics answered ${response.status}: ${response.body}`);
  return parseExposition(response.body);
}

export function parseExposition(text: string): Scrape {
  const samples: Scrape = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    samples.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return samples;
}

/** The samples of the `pushlet_*` gauges and counters (histograms left out), as an object. */
export function pushletSamples(samples: Scrape): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [series, value] of samples) {
    if (!series.startsWith('pushlet_') || /_seconds_(bucket|sum|count)/.test(series)) continue;
    out[series] = value;
  }
  return out;
}
