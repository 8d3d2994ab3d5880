import { APP_ROOT, localSettings, readHostJson } from '../settings';
import { WorkerRegistry } from './core';
import { startHttpHost } from './http';
import type { HostLog } from './invoke';
import { entryFiles, provideCoreModule } from './load';

// The local Functions host: what `func start` does for this app, in one Node process. Settings
// first (the app validates them as it loads), then the app's own registrations, then the HTTP
// listener. It never reads a second list of functions: what the app registered is what is served.

const log: HostLog = (level, message) => {
  const line = `[${new Date().toISOString()}] ${message}`;
  if (level === 'error' || level === 'critical') console.error(line);
  else if (level === 'warning') console.warn(line);
  else console.log(line);
};

async function main(): Promise<void> {
  // The stack passes every setting in the environment and asks the host not to read the file again.
  if (!process.argv.includes('--no-local-settings')) {
    for (const [key, value] of Object.entries(localSettings(process.env))) process.env[key] ??= value;
  }
  const hostJson = readHostJson();

  const registry = new WorkerRegistry((level, _category, message) => log(level, message));
  provideCoreModule(registry.createCoreApi());
  for (const file of entryFiles(APP_ROOT)) {
    try {
      require(file);
    } catch (err) {
      log(
        'error',
        `Worker was unable to load entry point "${file}": ${err instanceof Error ? err.message : String(err)}`,
      );
      process.exit(1);
    }
  }
  await registry.runHooks('appStart', { hookData: {}, appHookData: {} });

  const http = await startHttpHost({
    registry,
    routePrefix: hostJson.routePrefix,
    port: Number(process.env.PORT ?? 7071),
    log,
  });
  log('information', 'Functions:');
  for (const route of http.routes) {
    log(
      'information',
      `  ${route.name}: [${route.methods.join(',')}] http://localhost:${http.port}${route.path}`,
    );
  }
  // A line the stack (and tests) wait for: the host is serving.
  log('information', `Host started, listening on http://localhost:${http.port}`);

  const stop = (): void => {
    void registry
      .runHooks('appTerminate', { hookData: {}, appHookData: {} })
      .finally(() => http.close())
      .finally(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((err: unknown) => {
  log('error', `Host failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
});
