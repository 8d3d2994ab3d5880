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

it('spreads messages put back for later one slot apart', () => {
  const { pacer, advance } = pacerAt(5);
  const delays = Array.from({ length: 4 }, () => pacer.laterSlot(TENANT, 300));
  expect(delays).toEqual([300, 510, 720, 930]);
  advance(5000);
  expect(pacer.laterSlot(TENANT, 100)).toBe(100);
});
