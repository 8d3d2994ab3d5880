// Section 4: cold start — the app's entry files loaded in a fresh process, against
// `@azure/functions` alone, with telemetry off and on (a connection string whose ingestion
// endpoint is a closed loopback port; the loopback guard refuses anything else).
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { APP_ROOT } from '../dev/root';
import type { ColdStartSample } from './cold-start-child';
import { median, round } from './load';

export interface ColdStartRow {
  what: 'bare @azure/functions' | 'app, telemetry off' | 'app, telemetry on';
  runs: number;
  loadMsMedian: number;
  rssMbMedian: number;
  heapUsedMbMedian: number;
  /** Process start to exit, as the parent saw it (Node's own start-up included). */
  processMsMedian: number;
  functions: number;
  refusedConnections: string[];
  note?: string;
}

const TELEMETRY_ON = {
  APPLICATIONINSIGHTS_CONNECTION_STRING:
    'InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=https://127.0.0.1:9/',
  APPLICATION_INSIGHTS_NO_STATSBEAT: 'true',
};

/** Whether the telemetry module has landed (shared/telemetry.ts, built, with its SDK installed). */
export function telemetryAvailable(): boolean {
  if (!existsSync(path.join(APP_ROOT, 'dist', 'shared', 'telemetry.js'))) return false;
  try {
    require.resolve('applicationinsights', { paths: [APP_ROOT] });
    return true;
  } catch {
    return false;
  }
}

function once(
  what: 'app' | 'bare',
  env: Record<string, string>,
): Promise<ColdStartSample & { processMs: number }> {
  const script = path.join(__dirname, 'cold-start-child.js');
  const started = performance.now();
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--expose-gc', script, what],
      { env, timeout: 30_000, maxBuffer: 1 << 20 },
      (err, stdout, stderr) => {
        if (err) return reject(new Error(`cold start (${what}) failed: ${stderr || err.message}`));
        const line = stdout.trim().split('\n').pop() ?? '';
        resolve({ ...(JSON.parse(line) as ColdStartSample), processMs: performance.now() - started });
      },
    );
  });
}

export async function measureColdStart(
  settings: Record<string, string>,
  runs: number,
): Promise<ColdStartRow[]> {
  const base = Object.fromEntries(
    Object.entries(settings).filter(([k]) => k !== 'APPLICATIONINSIGHTS_CONNECTION_STRING'),
  );
  const variants = [
    { what: 'bare @azure/functions', mode: 'bare', env: base },
    { what: 'app, telemetry off', mode: 'app', env: base },
    // Telemetry may export in the background after load: give it two seconds to try (and be refused).
    { what: 'app, telemetry on', mode: 'app', env: { ...base, ...TELEMETRY_ON, BENCH_SETTLE_MS: '2000' } },
  ] as const;
  const samples = new Map<string, (ColdStartSample & { processMs: number })[]>();
  // Interleaved, so that a slow moment of the machine does not land on one variant only.
  for (let i = 0; i < runs; i++) {
    for (const v of variants) {
      const list = samples.get(v.what) ?? [];
      list.push(await once(v.mode, v.env));
      samples.set(v.what, list);
    }
  }
  const telemetry = telemetryAvailable();
  return variants.map((v) => {
    const list = samples.get(v.what)!;
    return {
      what: v.what,
      runs,
      loadMsMedian: round(median(list.map((s) => s.loadMs)), 1),
      rssMbMedian: round(median(list.map((s) => s.rssMb)), 1),
      heapUsedMbMedian: round(median(list.map((s) => s.heapUsedMb)), 1),
      // The "on" variant waits BENCH_SETTLE_MS before exiting; that is not start-up.
      processMsMedian: round(
        median(list.map((s) => s.processMs)) - (v.what === 'app, telemetry on' ? 2000 : 0),
        1,
      ),
      functions: list[0]!.functions,
      refusedConnections: [...new Set(list.flatMap((s) => s.refusedConnections))],
      ...(v.what === 'app, telemetry on' && !telemetry
        ? {
            note: 'pending: shared/telemetry.ts (applicationinsights) is not in yet, so this loads the same code as "off"',
          }
        : {}),
    };
  });
}
