import { spawn } from 'node:child_process';
import path from 'node:path';
import { APP_ROOT } from './root';

export interface FunctionHostProcess {
  url: string;
  port: number;
  /** Everything the host and the app wrote to stdout and stderr so far. */
  output(): string;
  stop(): Promise<void>;
  /** Ends the host at once (SIGKILL), as a crash or a scale-in would: nothing settles. */
  kill(): Promise<void>;
}

// Always the build: tests import this module from the sources, but the host runs compiled.
const HOST_MAIN = path.join(APP_ROOT, 'dist', 'dev', 'host', 'main.js');

/**
 * Starts the local Functions host in its own process, with `settings` as its environment: the CA
 * it trusts is the `NODE_EXTRA_CA_CERTS` there (a local stack's settings name the right one). Node
 * reads that variable only as a process starts, which is why the host is a separate process.
 * Resolves when the host says it is listening.
 */
export async function startFunctionHost(options: {
  settings: Record<string, string>;
  port: number;
  /**
   * A CA file to trust instead of the settings' `NODE_EXTRA_CA_CERTS`, for a host started without
   * a local stack; not needed when the app calls nothing over HTTPS.
   */
  caPath?: string;
  /** Run this function app instead of the repository's (`--app`). */
  appRoot?: string;
  /** Echo the host's output to this process's stdout/stderr as well. */
  echo?: boolean;
  timeoutMs?: number;
}): Promise<FunctionHostProcess> {
  const args = [HOST_MAIN, '--no-local-settings', ...(options.appRoot ? ['--app', options.appRoot] : [])];
  const child = spawn(process.execPath, args, {
    env: {
      ...options.settings,
      PORT: String(options.port),
      ...(options.caPath ? { NODE_EXTRA_CA_CERTS: options.caPath } : {}),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const ready = new Promise<number>((resolve, reject) => {
    const timer = setTimeout(
      () =>
        reject(new Error(`Function host did not start within ${options.timeoutMs ?? 30_000} ms:\n${output}`)),
      options.timeoutMs ?? 30_000,
    );
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      const match = /listening on http:\/\/localhost:(\d+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    if (options.echo) {
      child.stdout.pipe(process.stdout);
      child.stderr.pipe(process.stderr);
    }
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`Function host exited with code ${code}:\n${output}`));
    });
  });
  const port = await ready;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    output: () => output,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}
