/** What the pacer says about one send: go now, or the earliest time a slot frees. */
export type Slot = { ok: true } | { ok: false; waitMs: number };

/**
 * At most `perSecond` calls per tenant in any one-second window, from this instance: Graph allows
 * the Teams activity endpoint 5 requests per second per app per tenant, and answers 429 beyond it.
 * Counted at the moment a send starts (a sliding window of the last second's starts), so that
 * however sends are delayed or bunched, no window ever holds more than the budget.
 *
 * Messages that must wait on the queue are spread over the coming seconds (`laterSlot`) so that
 * they come back roughly one slot apart rather than all at once.
 */
export class TenantPacer {
  private readonly starts = new Map<string, number[]>();
  private readonly promised = new Map<string, number>();
  private readonly intervalMs: number;

  constructor(
    private readonly perSecond: number,
    private readonly now: () => number = Date.now,
  ) {
    this.intervalMs = 1000 / perSecond;
  }

  /** Takes a slot now if the tenant's last second has room; otherwise says when one frees. */
  take(tenantId: string): Slot {
    const now = this.now();
    const key = tenantId.toLowerCase();
    const recent = (this.starts.get(key) ?? []).filter((t) => t > now - 1000);
    if (recent.length < this.perSecond) {
      recent.push(now);
      this.starts.set(key, recent);
      return { ok: true };
    }
    this.starts.set(key, recent);
    return { ok: false, waitMs: recent[0]! + 1000 - now };
  }

  /**
   * For a message put back because the budget was spent: how long to hide it so that the messages
   * waiting for one tenant come back one slot apart. Only a spreading estimate: a message that
   * comes back while the budget is still spent is put back again.
   */
  laterSlot(tenantId: string, waitMs: number): number {
    const now = this.now();
    const key = tenantId.toLowerCase();
    const at = Math.max(now + waitMs, this.promised.get(key) ?? 0);
    this.promised.set(key, at + this.intervalMs);
    return at - now;
  }
}
