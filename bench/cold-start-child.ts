// One cold start, in a fresh process: loads either the app's entry files (as the worker does,
// with `@azure/functions-core` provided) or `@azure/functions` alone, and reports how long the
// `require`s took and the RSS after them (after a GC). Usage: cold-start-child.js app|bare.
// The settings come from the environment (the app validates them as it loads).
import { refusedConnections } from './loopback-guard';
import { WorkerRegistry } from '../dev/host/core';
import { entryFiles, provideCoreModule } from '../dev/host/load';
import { APP_ROOT } from '../dev/root';

export interface ColdStartSample {
  loadMs: number;
  rssMb: number;
  heapUsedMb: number;
  functions: number;
  refusedConnections: string[];
}

async function main(): Promise<void> {
  const what = process.argv[2];
  const registry = new WorkerRegistry(() => undefined);
  provideCoreModule(registry.createCoreApi());
  const files = what === 'app' ? entryFiles(APP_ROOT) : [require.resolve('@azure/functions')];
  const started = performance.now();
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- the worker loads entry points with require
  for (const file of files) require(file);
  await registry.runHooks('appStart', { hookData: {}, appHookData: {} });
  const loadMs = performance.now() - started;
  // Whatever the app starts in the background at load (telemetry's first export, say) gets a moment to try.
  await new Promise((resolve) => setTimeout(resolve, Number(process.env.BENCH_SETTLE_MS ?? 0)));
  global.gc?.();
  const memory = process.memoryUsage();
  const sample: ColdStartSample = {
    loadMs,
    rssMb: memory.rss / 2 ** 20,
    heapUsedMb: memory.heapUsed / 2 ** 20,
    functions: registry.functions.length,
    refusedConnections,
  };
  process.stdout.write(`${JSON.stringify(sample)}\n`);
  process.exit(0);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.stack : String(err));
  process.exit(1);
});
