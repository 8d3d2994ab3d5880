import { startFunctionHost, type FunctionHostProcess } from '../../dev/host-process';
import { startLocalStack, type LocalStack } from '../../dev/stack';

export interface TestApp {
  stack: LocalStack;
  host: FunctionHostProcess;
  /** `http://127.0.0.1:<port>/api` */
  api: string;
  stop(): Promise<void>;
}

// Settings of the developer's shell or local.settings.json must not leak into a test run: the
// function host gets exactly what the test stack gives it, plus what a Node process needs.
const PASSTHROUGH = ['PATH', 'HOME', 'TMPDIR', 'TEMP', 'TMP', 'SystemRoot', 'LANG'];

/**
 * The whole app as `npm start` runs it, on free ports: stand-ins and Azurite in this process
 * and a child, and the local Functions host in its own process (it must start with the CA to trust
 * in NODE_EXTRA_CA_CERTS). `settings` are given to the stack, so what they name is not started;
 * the environment's NODE_EXTRA_CA_CERTS is not passed on unless `settings` name it.
 */
export async function startTestApp(
  options: {
    settings?: Record<string, string>;
    latencyMs?: { entra?: number; keyVault?: number; graph?: number };
    /** Start the ingestion stand-in and turn telemetry on (see `StackOptions.telemetry`). */
    telemetry?: boolean;
  } = {},
): Promise<TestApp> {
  const base: Record<string, string> = {};
  for (const key of PASSTHROUGH) if (process.env[key]) base[key] = process.env[key];
  const stack = await startLocalStack({
    settings: { ...base, ...(options.settings ?? {}) },
    ports: 'free',
    latencyMs: options.latencyMs,
    telemetry: options.telemetry,
  });
  let host: FunctionHostProcess;
  try {
    // The stack's settings name the CA file to trust, as for `npm start`.
    host = await startFunctionHost({ settings: stack.settings, port: 0 });
  } catch (err) {
    await stack.stop();
    throw err;
  }
  return {
    stack,
    host,
    api: `${host.url}/api`,
    stop: async () => {
      await host.stop();
      await stack.stop();
    },
  };
}

/** Polls `check` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function eventually<T>(
  check: () => Promise<T | undefined> | T | undefined,
  { timeoutMs = 15_000, intervalMs = 50, what = 'condition' } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
