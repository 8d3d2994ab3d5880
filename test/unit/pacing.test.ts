import { TenantPacer } from '../../shared/channels/pacing';

// The per-tenant pacer on an injected clock: sleeping advances the clock, so nothing really waits.

const TENANT = '7b1d4f00-0c1a-4e8e-9d2b-5a6f3c2e1d00';
const OTHER = '9c2e5a11-3f4b-4c6d-8e7f-0a1b2c3d4e00';

function pacerAt(perSecond: number, start = 1_000_000) {
  let now = start;
  const pacer = new TenantPacer(
    perSecond,
    () => now,
    async (ms) => {
      now += ms;
    },
  );
  return { pacer, now: () => now, advance: (ms: number) => (now += ms) };
}

it('spaces starts (1000 + 50) / perSecond ms apart, first come first served', async () => {
  const { pacer, now } = pacerAt(5);
  const starts: number[] = [];
  for (let i = 0; i < 6; i++) {
    const slot = await pacer.acquire(TENANT, 5000);
    expect(slot.ok).toBe(true);
    starts.push(now());
  }
  expect(starts.map((t) => t - starts[0]!)).toEqual([0, 210, 420, 630, 840, 1050]);
});

it('gives no slot to a caller who may not wait that long, and says how long; another tenant has its own', async () => {
  const { pacer, advance } = pacerAt(5);
  expect(await pacer.acquire(TENANT, 0)).toEqual({ ok: true, waitedMs: 0 });
  expect(await pacer.acquire(TENANT, 100)).toEqual({ ok: false, waitMs: 210 });
  expect(await pacer.acquire(TENANT.toUpperCase(), 0)).toEqual({ ok: false, waitMs: 210 });
  expect(await pacer.acquire(OTHER, 0)).toEqual({ ok: true, waitedMs: 0 });
  advance(210);
  expect(await pacer.acquire(TENANT, 0)).toEqual({ ok: true, waitedMs: 0 });
});

it('never starts more than the budget in any second plus the margin, however callers arrive', async () => {
  const { pacer, now, advance } = pacerAt(3);
  const starts: number[] = [];
  for (let i = 0; i < 300; i++) {
    advance((i * 7919) % 400);
    const slot = await pacer.acquire(TENANT, (i * 104729) % 1500);
    if (slot.ok) starts.push(now());
  }
  starts.sort((a, b) => a - b);
  expect(starts.length).toBeGreaterThan(100);
  for (let i = 3; i < starts.length; i++) expect(starts[i]! - starts[i - 3]!).toBeGreaterThanOrEqual(1050);
});

it('spreads messages put back for later one slot apart, and books a message put back twice once', () => {
  const { pacer } = pacerAt(5);
  const delays = Array.from({ length: 4 }, () => pacer.laterSlot(TENANT, 300));
  expect(delays).toEqual([300, 510, 720, 930]);
  // Two of them come back (and are sent, or put back again): the next waits behind two, not four.
  pacer.returned(TENANT);
  pacer.returned(TENANT);
  expect(pacer.laterSlot(TENANT, 300)).toBe(300 + 2 * 210);
  expect(pacer.laterSlot(OTHER, 100)).toBe(100);
});

it('an event loop that stalls does not let the starts it held back go out together', async () => {
  let now = 1_000_000;
  const timers: Array<{ at: number; wake: () => void }> = [];
  const pacer = new TenantPacer(
    5,
    () => now,
    (ms) => new Promise<void>((wake) => timers.push({ at: now + ms, wake })),
  );
  const starts: number[] = [];
  const all = Array.from({ length: 12 }, () =>
    pacer.acquire(TENANT, 10_000).then((slot) => slot.ok && starts.push(now)),
  );
  await new Promise((resolve) => setImmediate(resolve));
  // A 2-second stall: every timer due by then fires at once, late.
  for (let round = 0; round < 50 && starts.length < 12; round++) {
    now += round === 0 ? 2000 : 100;
    const due = timers.filter((t) => t.at <= now);
    const later = timers.filter((t) => t.at > now);
    timers.splice(0, timers.length, ...later);
    for (const t of due) t.wake();
    await new Promise((resolve) => setImmediate(resolve));
  }
  await Promise.all(all);
  expect(starts).toHaveLength(12);
  for (let i = 5; i < starts.length; i++) expect(starts[i]! - starts[i - 5]!).toBeGreaterThanOrEqual(1050);
});

it('admits a send taken without admission by when it really starts: a varying delay after the slot cannot bunch sends', async () => {
  const { pacer, now, advance } = pacerAt(5);
  const starts: number[] = [];
  for (let i = 0; i < 40; i++) {
    const slot = await pacer.acquire(TENANT, 5000, { admit: false });
    expect(slot.ok).toBe(true);
    // Between the slot and the send: the ledger's claim, 0-150 ms (more than the pacer's margin).
    const claimMs = (i * 37) % 150;
    advance(claimMs);
    await pacer.admit(TENANT);
    starts.push(now());
    // The next caller arrives for its slot as this one's send goes.
    advance(-claimMs);
  }
  starts.sort((a, b) => a - b);
  for (let i = 5; i < starts.length; i++) expect(starts[i]! - starts[i - 5]!).toBeGreaterThanOrEqual(1050);
});
