/** What the pacer says about one send: go (after waiting `waitedMs`), or how far off a slot is. */
export type Slot = { ok: true; waitedMs: number } | { ok: false; waitMs: number };

/**
 * Room left for the time between our start of a send and Graph counting it (TLS, a busy core):
 * sends start `(1000 + MARGIN_MS) / perSecond` ms apart, so any `perSecond` + 1 of them span more
 * than a second plus this margin. The price is the margin's share of the budget (5 % at 50 ms).
 */
const MARGIN_MS = 50;
const WINDOW_MS = 1000 + MARGIN_MS;

/**
 * At most `perSecond` Teams calls per tenant per second from this instance: Graph allows the
 * activity endpoint 5 requests per second per app per tenant and answers 429 beyond it. Starts are
 * spaced evenly rather than let through in bursts, because a burst that left spread out (new
 * connections) can arrive bunched (warm ones) and make Graph count more than the budget in a window.
 *
 * `acquire` hands out future slots first come, first served: a caller that may wait is told its
 * slot and sleeps until then; one whose slot is further off than it may wait is told how far, and
 * takes no slot.
 */
export class TenantPacer {
  private readonly next = new Map<string, number>();
  private readonly starts = new Map<string, number[]>();
  private readonly waiting = new Map<string, number>();
  private readonly spacingMs: number;

  constructor(
    private readonly perSecond: number,
    private readonly now: () => number = Date.now,
    private readonly sleep: (ms: number) => Promise<void> = (ms) =>
      new Promise((resolve) => setTimeout(resolve, ms)),
  ) {
    this.spacingMs = WINDOW_MS / perSecond;
  }

  /**
   * A slot within `maxWaitMs` (waited for), or how long until the next free one (nothing taken).
   * `admit: false` stops at the slot: the caller has more to do before its send (the queue's ledger
   * claim, whose round trip varies) and calls `admit` right before it, so that what is checked
   * against the window is when the send really starts.
   */
  async acquire(tenantId: string, maxWaitMs: number, options: { admit?: boolean } = {}): Promise<Slot> {
    const began = this.now();
    const key = tenantId.toLowerCase();
    const deadline = began + maxWaitMs;
    // The next evenly spaced start, first come first served.
    const at = Math.max(began, this.next.get(key) ?? began);
    if (at > deadline) return { ok: false, waitMs: at - began };
    this.next.set(key, at + this.spacingMs);
    if (at > began) await this.sleep(at - began);
    if (options.admit === false) return { ok: true, waitedMs: this.now() - began };
    return this.startBy(key, began, deadline);
  }

  /**
   * Right before a send whose slot was taken with `admit: false`: waits (at most about a window) until
   * fewer than `perSecond` sends started in the last window, and counts this one.
   */
  async admit(tenantId: string): Promise<void> {
    const now = this.now();
    await this.startBy(tenantId.toLowerCase(), now, Number.POSITIVE_INFINITY);
  }

  private async startBy(key: string, began: number, deadline: number): Promise<Slot> {
    // A timer that fires late (a busy event loop) must not let starts bunch: the starts actually
    // made decide, over a window of a second and the margin.
    for (;;) {
      const now = this.now();
      const recent = (this.starts.get(key) ?? []).filter((t) => t > now - WINDOW_MS);
      this.starts.set(key, recent);
      if (recent.length < this.perSecond) {
        recent.push(now);
        return { ok: true, waitedMs: now - began };
      }
      const free = recent[0]! + WINDOW_MS;
      if (free > deadline) return { ok: false, waitMs: free - now };
      await this.sleep(free - now);
    }
  }

  /**
   * For a message put back because its slot is far off: how long to hide it, so that the messages
   * waiting for one tenant come back about one slot apart rather than all at once. Counts the
   * messages this instance has put back and not seen again (`returned`), so a message put back
   * twice is not booked twice: a timeline that only grew would leave gaps with nothing to send.
   */
  laterSlot(tenantId: string, waitMs: number): number {
    const key = tenantId.toLowerCase();
    const waiting = this.waiting.get(key) ?? 0;
    this.waiting.set(key, waiting + 1);
    return waitMs + waiting * this.spacingMs;
  }

  /** A message this instance put back has come back (sent, put back again, or given up). */
  returned(tenantId: string): void {
    const key = tenantId.toLowerCase();
    const waiting = this.waiting.get(key) ?? 0;
    if (waiting > 0) this.waiting.set(key, waiting - 1);
  }
}
