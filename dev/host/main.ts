import path from 'node:path';
import { APP_ROOT, localSettings, readHostJson } from '../settings';
import { WorkerRegistry } from './core';
import { startHttpHost } from './http';
import { recordInvocationsTo, type HostLog } from './invoke';
import { entryFiles, provideCoreModule } from './load';
import { startQueueListeners } from './queue';
import { hostTelemetryFrom } from './telemetry';
import { timerTriggers } from './timer';

// The local Functions host: what `func start` does for this app, in one Node process. Settings
// first (the app validates them as it loads), then the app's own registrations, then the HTTP,
// queue and timer listeners. It never reads a second list of functions: what the app registered is what is served.

// Dev-only: `LOCAL_HOST_LOG_LEVEL=warning` drops the host's own information lines (two or three per
// invocation). The benchmark sets it: the real host writes those in its own process, not the worker's,
// so here they would be charged to the app. The app's own logs (`[function] …`) are kept, and so is
// the line the stack waits for.
const quietHost = /^warn(ing)?$/i.test(process.env.LOCAL_HOST_LOG_LEVEL ?? '');

const log: HostLog = (level, message) => {
  if (
    quietHost &&
    (level === 'information' || level === 'debug' || level === 'trace') &&
    !/^\[[^\]]+\] /.test(message) &&
    !message.startsWith('Host started, listening on')
  )
    return;
  const line = `[${new Date().toISOString()}] ${message}`;
  if (level === 'error' || level === 'critical') console.error(line);
  else if (level === 'warning') console.warn(line);
  else console.log(line);
};

/** `--app <dir>`: the function app to run (a test fixture, say); the repository itself by default. */
function appRootFrom(argv: string[]): string {
  const index = argv.indexOf('--app');
  if (index === -1) return APP_ROOT;
  const dir = argv[index + 1];
  if (!dir || dir.startsWith('--')) throw new Error('--app needs a directory');
  return path.resolve(dir);
}

/** Dev-only: how long fetched queue messages stay invisible (the host's fixed 10 minutes otherwise). */
function fetchVisibilityMs(env: NodeJS.ProcessEnv): number | undefined {
  const value = env.LOCAL_HOST_QUEUE_FETCH_VISIBILITY_SECONDS;
  if (value === undefined || value === '') return undefined;
  const seconds = Number(value);
  if (!Number.isInteger(seconds) || seconds < 1) {
    throw new Error(
      `LOCAL_HOST_QUEUE_FETCH_VISIBILITY_SECONDS must be a whole number of seconds, not "${value}"`,
    );
  }
  return seconds * 1000;
}

async function main(): Promise<void> {
  const appRoot = appRootFrom(process.argv);
  // The stack passes every setting in the environment and asks the host not to read the file again.
  if (!process.argv.includes('--no-local-settings')) {
    for (const [key, value] of Object.entries(localSettings(process.env, appRoot)))
      process.env[key] ??= value;
  }
  const hostJson = readHostJson(appRoot);
  const hostTelemetry = hostTelemetryFrom(process.env);
  recordInvocationsTo(hostTelemetry);

  const registry = new WorkerRegistry((level, _category, message) => log(level, message));
  provideCoreModule(registry.createCoreApi());
  for (const file of entryFiles(appRoot)) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- the worker loads entry points with require
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
  // Schedules are checked before anything listens: one that is not valid stops the host here.
  const timers = timerTriggers({ registry, log });

  const http = await startHttpHost({
    registry,
    routePrefix: hostJson.routePrefix,
    port: Number(process.env.PORT ?? 7071),
    log,
  });
  const queues = startQueueListeners({
    registry,
    hostJson,
    log,
    fetchVisibilityMs: fetchVisibilityMs(process.env),
  });
  timers.start();
  log('information', 'Functions:');
  for (const route of http.routes) {
    log(
      'information',
      `  ${route.name}: [${route.methods.join(',')}] http://localhost:${http.port}${route.path}`,
    );
  }
  for (const listener of queues.listeners) {
    log('information', `  ${listener.functionName}: queueTrigger (queue '${listener.queueName}')`);
  }
  for (const timer of timers.timers) {
    log('information', `  ${timer.functionName}: timerTrigger (schedule '${timer.schedule}')`);
  }
  // A line the stack (and tests) wait for: the host is serving.
  log('information', `Host started, listening on http://localhost:${http.port}`);

  const stop = (): void => {
    // Listeners first, so running invocations settle their messages before the app is told to terminate.
    void Promise.all([queues.stop(), timers.stop()])
      .finally(() => registry.runHooks('appTerminate', { hookData: {}, appHookData: {} }))
      .finally(() => hostTelemetry?.flush())
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
