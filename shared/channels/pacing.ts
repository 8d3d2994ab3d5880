/** What the pacer says about one send: go now (and say when it is done), or when a slot may free. */
export type Slot = { ok: true; done: () => void } | { ok: false; waitMs: number };

/** A send still in flight holds its slot; when we cannot know how long, we look again this soon. */
const IN_FLIGHT_RECHECK_MS = 50;

/**
 * At most `perSecond` calls per tenant in any one-second window, from this instance: Graph allows
 * the Teams activity endpoint 5 requests per second per app per tenant, and answers 429 beyond it.
 *
 * Graph counts a request when it arrives, which lies somewhere between our start and its answer.
 * So a send holds its slot from its start until one second after its answer (`done`): a later send
 * then starts only after every counted one had arrived more than a second before, whatever the
 * latency — the window Graph sees never holds more than the budget. The cost is the latency: the
 * rate reached is `perSecond` per (1 s + Graph's answer time).
 *
 * Messages that must wait on the queue are spread over the coming seconds (`laterSlot`) so that
 * they come back roughly one slot apart rather than all at once.
 */
export class TenantPacer {
  private readonly sends = new Map<string, Array<{ end: number | undefined }>>();
  private readonly promised = new Map<string, number>();
  private readonly intervalMs: number;

  constructor(
    private readonly perSecond: number,
    private readonly now: () => number = Date.now,
  ) {
    this.intervalMs = 1000 / perSecond;
  }

  /** Takes a slot now if the tenant's last second has room; otherwise says when one may free. */
  take(tenantId: string): Slot {
    const now = this.now();
    const key = tenantId.toLowerCase();
    const held = (this.sends.get(key) ?? []).filter((s) => s.end === undefined || s.end > now - 1000);
    this.sends.set(key, held);
    if (held.length < this.perSecond) {
      const send: { end: number | undefined } = { end: undefined };
      held.push(send);
      return { ok: true, done: () => (send.end ??= this.now()) };
    }
    const waits = held.map((s) => (s.end === undefined ? IN_FLIGHT_RECHECK_MS : s.end + 1000 - now));
    return { ok: false, waitMs: Math.max(1, Math.min(...waits)) };
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
