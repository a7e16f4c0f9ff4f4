import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { PushletHealthIndicator } from './pushlet-health.indicator.js';

/**
 * Provides {@link PushletHealthIndicator} (with Terminus's `HealthIndicatorService`). Import it
 * with `TerminusModule` in the module of your health controller; it reads `PushletService`.
 */
@Module({
  imports: [TerminusModule],
  providers: [PushletHealthIndicator],
  exports: [PushletHealthIndicator],
})
export class PushletHealthModule {}
