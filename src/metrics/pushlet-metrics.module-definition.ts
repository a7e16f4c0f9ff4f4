import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { PushletMetricsModuleOptions } from './pushlet-metrics.options.js';

/** `forRoot` / `forRootAsync` (useFactory, useClass, useExisting) for the metrics module. */
export const {
  ConfigurableModuleClass: PushletMetricsConfigurableModule,
  MODULE_OPTIONS_TOKEN: PUSHLET_METRICS_OPTIONS,
  OPTIONS_TYPE: PUSHLET_METRICS_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<PushletMetricsModuleOptions>().setClassMethodName('forRoot').setFactoryMethodName('createPushletMetricsOptions').build();
