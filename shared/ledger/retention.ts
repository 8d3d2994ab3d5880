import type { Logger } from '../notifications/send';
import { noTelemetry, type Telemetry } from '../telemetry';

/** Port: what the retention sweep deletes (the delivery ledger). */
export interface Sweepable {
  sweep(): Promise<number>;
}

/**
 * The timer function's work: deletes the ledger entries the retention period has passed, and
 * says how many. A failed sweep is thrown (the host logs the invocation as failed); the next
 * occurrence sweeps what this one left.
 */
export class LedgerRetention {
  constructor(
    private readonly ledger: Sweepable,
    private readonly retentionDays: number,
    private readonly telemetry: Telemetry = noTelemetry,
  ) {}

  async sweep(log: Logger): Promise<number> {
    const count = await this.ledger.sweep();
    log.info('Delivery ledger swept', { deleted: count, retentionDays: this.retentionDays });
    this.telemetry.trackEvent('LedgerSwept', { count });
    return count;
  }
}
