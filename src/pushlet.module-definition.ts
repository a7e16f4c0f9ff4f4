import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { PushletModuleOptions } from './interfaces/pushlet-options.interface.js';

/** `forRoot` / `forRootAsync` (useFactory, useClass, useExisting) with an `isGlobal` extra, default true. */
export const {
  ConfigurableModuleClass: PushletConfigurableModule,
  MODULE_OPTIONS_TOKEN: PUSHLET_MODULE_OPTIONS,
  OPTIONS_TYPE: PUSHLET_OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE: PUSHLET_ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<PushletModuleOptions>()
  .setClassMethodName('forRoot')
  .setFactoryMethodName('createPushletOptions')
  .setExtras({ isGlobal: true }, (definition, extras) => ({ ...definition, global: extras.isGlobal }))
  .build();
