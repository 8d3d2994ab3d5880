import { TenantPacer, type Slot } from '../../shared/channels/pacing';

// The per-tenant pacer on an injected clock. A send holds its slot from its start until a second
// after it is done: Graph counts it at arrival, somewhere in between.

const TENANT = '7b1d4f00-0c1a-4e8e-9d2b-5a6f3c2e1d00';
const OTHER = '9c2e5a11-3f4b-4c6d-8e7f-0a1b2c3d4e00';

function clock(start = 1_000_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

function taken(slot: Slot): () => void {
  if (!slot.ok) throw new Error(`expected a slot, told to wait ${slot.waitMs} ms`);
  return slot.done;
}

it('allows the budget, then says when the first finished send leaves the window', () => {
  const c = clock();
  const pacer = new TenantPacer(5, c.now);
  for (let i = 0; i < 5; i++) {
    taken(pacer.take(TENANT))();
    c.advance(100);
  }
  // The first was done at +0 ms, now is +500 ms: it frees at +1000 ms.
  expect(pacer.take(TENANT)).toEqual({ ok: false, waitMs: 500 });
  // Another tenant has its own budget; letter case does not make a new one.
  expect(pacer.take(OTHER).ok).toBe(true);
  expect(pacer.take(TENANT.toUpperCase())).toEqual({ ok: false, waitMs: 500 });
  c.advance(500);
  expect(pacer.take(TENANT).ok).toBe(true);
});

it('keeps a slot while the send is in flight, and for a second after its answer', () => {
  const c = clock();
  const pacer = new TenantPacer(1, c.now);
  const done = taken(pacer.take(TENANT));
  c.advance(5000);
  // Still in flight after 5 s (a slow Graph): no new send, look again shortly.
  expect(pacer.take(TENANT)).toEqual({ ok: false, waitMs: 50 });
  done();
  c.advance(999);
  expect(pacer.take(TENANT)).toEqual({ ok: false, waitMs: 1 });
  c.advance(1);
  expect(pacer.take(TENANT).ok).toBe(true);
});

it('whatever the latency, the arrivals Graph sees never hold more than the budget in one second', () => {
  const c = clock();
  const pacer = new TenantPacer(3, c.now);
  const arrivals: number[] = [];
  const inFlight: Array<{ arriveAt: number; doneAt: number; done: () => void; arrived: boolean }> = [];
  for (let step = 0; step < 4000; step++) {
    c.advance(1 + ((step * 7919) % 13));
    for (const f of inFlight) {
      if (!f.arrived && c.now() >= f.arriveAt) {
        f.arrived = true;
        arrivals.push(f.arriveAt);
      }
      if (c.now() >= f.doneAt) f.done();
    }
    const slot = pacer.take(TENANT);
    if (slot.ok) {
      const latency = (step * 104729) % 300;
      inFlight.push({
        arriveAt: c.now() + Math.floor(latency / 2),
        doneAt: c.now() + latency,
        done: slot.done,
        arrived: false,
      });
    }
  }
  arrivals.sort((a, b) => a - b);
  expect(arrivals.length).toBeGreaterThan(50);
  for (let i = 3; i < arrivals.length; i++) expect(arrivals[i]! - arrivals[i - 3]!).toBeGreaterThan(1000);
});

it('spreads messages put back for later one slot apart', () => {
  const c = clock();
  const pacer = new TenantPacer(5, c.now);
  const delays = Array.from({ length: 6 }, () => pacer.laterSlot(TENANT, 300));
  expect(delays).toEqual([300, 500, 700, 900, 1100, 1300]);
  c.advance(5000);
  expect(pacer.laterSlot(TENANT, 100)).toBe(100);
});
