import path from 'node:path';
import { startFunctionHost } from './host-process';
import { DEFAULT_PORTS } from './ports';
import { APP_ROOT } from './root';
import { localSettings } from './settings';
import { tryItLines } from './start-banner';
import { AZURITE_DATA, startLocalStack } from './stack';

// `npm start`: the whole app on this machine with no configuration and no cloud account.
// `npm start -- --secretless`: the same with no secret in any setting, as in Azure: the app's
// managed identity (App Service's endpoint, a stand-in) is its credential everywhere.

async function main(): Promise<void> {
  const began = performance.now();
  const given = localSettings(process.env);
  if (process.argv.includes('--secretless')) given.ENTRA_CLIENT_ASSERTION ||= 'managed-identity';
  const stack = await startLocalStack({
    settings: given,
    ports: {
      entra: DEFAULT_PORTS.entra,
      keyVault: DEFAULT_PORTS.keyVault,
      graph: DEFAULT_PORTS.graph,
      azurite: {
        blob: DEFAULT_PORTS.azuriteBlob,
        queue: DEFAULT_PORTS.azuriteQueue,
        table: DEFAULT_PORTS.azuriteTable,
      },
    },
    azuriteLocation: AZURITE_DATA,
  });
  let stopping = false;
  const stopAll = async (code: number): Promise<void> => {
    if (stopping) return;
    stopping = true;
    console.log('\nStopping…');
    await host?.stop().catch(() => undefined);
    await stack.stop();
    process.exit(code);
  };
  process.once('SIGINT', () => void stopAll(0));
  process.once('SIGTERM', () => void stopAll(0));

  let host: Awaited<ReturnType<typeof startFunctionHost>> | undefined;
  try {
    host = await startFunctionHost({
      settings: stack.settings,
      port: Number(given.PORT ?? DEFAULT_PORTS.functions),
      echo: true,
    });
  } catch (err) {
    console.error(err instanceof Error ? err.message : String(err));
    await stopAll(1);
    return;
  }
  const api = `http://localhost:${host.port}/api`;
  const seconds = ((performance.now() - began) / 1000).toFixed(1);
  const lines = [
    '',
    `graph-notify is running (started in ${seconds} s). Ctrl-C stops everything below.`,
    '',
    `  Functions           ${api}`,
    ...stack.started.map((s) => `  ${s}`),
    ...(stack.settings.NODE_EXTRA_CA_CERTS
      ? [`  CAs trusted         ${trustNote(given, stack.settings)}`]
      : []),
    '',
    ...tryItLines(api, stack.graph ? `${stack.graph.url}/` : undefined),
    '',
  ];
  console.log(lines.join('\n'));
}

/** Which CA file the functions trust, and why: the environment's, the local CA's, or both. */
function trustNote(given: Record<string, string>, settings: Record<string, string>): string {
  const full = settings.NODE_EXTRA_CA_CERTS ?? '';
  const file =
    path.isAbsolute(full) && full.startsWith(APP_ROOT + path.sep) ? path.relative(APP_ROOT, full) : full;
  if (!given.NODE_EXTRA_CA_CERTS) return `${file}  (the local CA)`;
  if (given.NODE_EXTRA_CA_CERTS === full) return `${file}  (NODE_EXTRA_CA_CERTS as given)`;
  return `${file}  (NODE_EXTRA_CA_CERTS and the local CA)`;
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
