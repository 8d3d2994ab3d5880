import { TenantPacer } from '../../shared/channels/pacing';

// The per-tenant pacer on an injected clock: the budget is counted over any one-second window.

const TENANT = '7b1d4f00-0c1a-4e8e-9d2b-5a6f3c2e1d00';
const OTHER = '9c2e5a11-3f4b-4c6d-8e7f-0a1b2c3d4e00';

function clock(start = 1_000_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

it('allows the budget in any one second, then says when the oldest send leaves the window', () => {
  const c = clock();
  const pacer = new TenantPacer(5, c.now);
  for (let i = 0; i < 5; i++) {
    expect(pacer.take(TENANT)).toEqual({ ok: true });
    c.advance(100);
  }
  expect(pacer.take(TENANT)).toEqual({ ok: false, waitMs: 500 });
  // Another tenant has its own budget; letter case does not make a new one.
  expect(pacer.take(OTHER)).toEqual({ ok: true });
  expect(pacer.take(TENANT.toUpperCase())).toEqual({ ok: false, waitMs: 500 });
  c.advance(500);
  expect(pacer.take(TENANT)).toEqual({ ok: true });
  expect(pacer.take(TENANT)).toEqual({ ok: false, waitMs: 100 });
});

it('never lets a window hold more than the budget, whatever the arrival pattern', () => {
  const c = clock();
  const pacer = new TenantPacer(3, c.now);
  const sent: number[] = [];
  for (let i = 0; i < 500; i++) {
    c.advance((i * 7919) % 230);
    if (pacer.take(TENANT).ok) sent.push(c.now());
  }
  for (let i = 3; i < sent.length; i++) expect(sent[i]! - sent[i - 3]!).toBeGreaterThanOrEqual(1000);
  expect(sent.length).toBeGreaterThan(100);
});

it('spreads messages put back for later one slot apart', () => {
  const c = clock();
  const pacer = new TenantPacer(5, c.now);
  const delays = Array.from({ length: 6 }, () => pacer.laterSlot(TENANT, 300));
  expect(delays).toEqual([300, 500, 700, 900, 1100, 1300]);
  c.advance(5000);
  expect(pacer.laterSlot(TENANT, 100)).toBe(100);
});
