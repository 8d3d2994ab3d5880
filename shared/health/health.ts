import { AppError } from '../errors';

/** One dependency the app needs to serve. `check` resolves when it is reachable, throws when not. */
export interface DependencyProbe {
  readonly name: string;
  check(signal: AbortSignal): Promise<void>;
}

export type HealthReport =
  | { healthy: true; checks: Record<string, 'ok'> }
  | { healthy: false; checks: Record<string, string>; error: AppError };

const TIMEOUT_MS = 3000;
// Load balancers and uptime checks call health often; one round of probes serves them all for a while.
const CACHE_MS = 10_000;

/** Checks every dependency in parallel, each bounded by a timeout; results are reused for 10 s. */
export class HealthService {
  private last: { at: number; report: Promise<HealthReport> } | undefined;

  constructor(
    private readonly probes: readonly DependencyProbe[],
    private readonly now: () => number = Date.now,
  ) {}

  check(): Promise<HealthReport> {
    if (this.last && this.now() - this.last.at < CACHE_MS) return this.last.report;
    const report = this.run();
    this.last = { at: this.now(), report };
    return report;
  }

  private async run(): Promise<HealthReport> {
    const results = await Promise.all(
      this.probes.map(async (probe) => {
        try {
          await probe.check(AbortSignal.timeout(TIMEOUT_MS));
          return [probe.name, 'ok'] as const;
        } catch (err) {
          return [probe.name, describe(err)] as const;
        }
      }),
    );
    const failing = results.filter(([, status]) => status !== 'ok').map(([name]) => name);
    const checks = Object.fromEntries(results);
    if (failing.length === 0) return { healthy: true, checks: checks as Record<string, 'ok'> };
    return {
      healthy: false,
      checks,
      error: new AppError('dependency_unavailable', {
        detail: `Unavailable: ${failing.join(', ')}`,
        retryAfterSeconds: CACHE_MS / 1000,
      }),
    };
  }
}

// Health is anonymous: a probe's status says what failed, never where (no addresses, no messages).
function describe(err: unknown): string {
  if (err instanceof Error && err.name === 'TimeoutError') return `no answer within ${TIMEOUT_MS} ms`;
  if (err instanceof Error && /^answered \d{3}$/.test(err.message)) return err.message;
  return 'unreachable';
}

/**
 * A probe that an HTTP endpoint answers at all. Any status below 500 counts: the endpoints asked
 * (Key Vault, Graph) answer an anonymous request with 401, which proves they are up.
 */
export function httpProbe(name: string, url: string, expectOk = false): DependencyProbe {
  return {
    name,
    async check(signal) {
      const res = await fetch(url, { signal, redirect: 'manual' });
      await res.body?.cancel();
      if (res.status >= 500 || (expectOk && !res.ok)) throw new Error(`answered ${res.status}`);
    },
  };
}
