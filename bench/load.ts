// A closed-loop load generator: `concurrency` workers, each sending its next request as soon as
// the previous one answered, until `count` requests were sent. Latencies are recorded per request
// (no sampling), so percentiles come from every request of the run.

export interface LoadResult {
  count: number;
  concurrency: number;
  ok: number;
  failed: number;
  /** Status codes other than the expected one, with how often each came. */
  failures: Record<string, number>;
  seconds: number;
  perSecond: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  maxMs: number;
}

/** The value below which `p` of the sorted samples lie (nearest rank). */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil(p * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))]!;
}

export function median(values: readonly number[]): number {
  return percentile(
    [...values].sort((a, b) => a - b),
    0.5,
  );
}

/**
 * Sends `count` requests with `concurrency` in flight. `send(i)` makes request number `i` and
 * resolves to its HTTP status; anything other than `expectStatus` counts as failed (and is still
 * timed). Bounded: each request has the timeout `send` gives it.
 */
export async function runClosedLoop(options: {
  count: number;
  concurrency: number;
  expectStatus: number;
  send: (i: number) => Promise<number>;
}): Promise<LoadResult> {
  const latencies: number[] = [];
  const failures: Record<string, number> = {};
  let next = 0;
  let ok = 0;
  const started = performance.now();
  const worker = async (): Promise<void> => {
    for (;;) {
      const i = next++;
      if (i >= options.count) return;
      const t0 = performance.now();
      let status: string;
      try {
        status = String(await options.send(i));
      } catch (err) {
        status = err instanceof Error ? err.name : 'error';
      }
      latencies.push(performance.now() - t0);
      if (status === String(options.expectStatus)) ok++;
      else failures[status] = (failures[status] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, () => worker()));
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    count: options.count,
    concurrency: options.concurrency,
    ok,
    failed: options.count - ok,
    failures,
    seconds: round(seconds, 2),
    perSecond: round(options.count / seconds, 1),
    p50Ms: round(percentile(latencies, 0.5), 1),
    p95Ms: round(percentile(latencies, 0.95), 1),
    p99Ms: round(percentile(latencies, 0.99), 1),
    maxMs: round(latencies[latencies.length - 1] ?? NaN, 1),
  };
}

export function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** POSTs JSON and drains the answer (an unread body keeps the keep-alive connection busy). */
export async function postJson(
  url: string,
  token: string,
  body: unknown,
  timeoutMs = 30_000,
): Promise<number> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  await res.arrayBuffer();
  return res.status;
}
