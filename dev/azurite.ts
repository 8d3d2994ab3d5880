import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createConnection } from 'node:net';
import path from 'node:path';
import { LOCAL_DIR } from './tls';

// Azurite's well-known development account (documented by Microsoft; not a secret).
const ACCOUNT = 'devstoreaccount1';
const ACCOUNT_KEY =
  'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

export interface RunningAzurite {
  connectionString: string;
  queueUrl: string;
  stop(): Promise<void>;
}

export interface AzuritePorts {
  blob: number;
  queue: number;
  table: number;
}

function connectionStringFor(ports: AzuritePorts): string {
  const host = '127.0.0.1';
  return [
    'DefaultEndpointsProtocol=http',
    `AccountName=${ACCOUNT}`,
    `AccountKey=${ACCOUNT_KEY}`,
    `BlobEndpoint=http://${host}:${ports.blob}/${ACCOUNT}`,
    `QueueEndpoint=http://${host}:${ports.queue}/${ACCOUNT}`,
    `TableEndpoint=http://${host}:${ports.table}/${ACCOUNT}`,
  ].join(';');
}

export async function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Starts Azurite (blob, queue and table: a Functions-style host needs all three) from its npm
 * package, in memory unless `location` is given, with its telemetry off. Resolves once every
 * port accepts connections, polling with a bound.
 */
export async function startAzurite(
  ports: AzuritePorts,
  options: { location?: string; silent?: boolean } = {},
): Promise<RunningAzurite> {
  for (const port of [ports.blob, ports.queue, ports.table]) {
    if (await portOpen(port)) throw new Error(`Port ${port} is already in use (another Azurite?)`);
  }
  const bin = require.resolve('azurite/dist/src/azurite.js');
  const args = [
    bin,
    '--blobPort',
    String(ports.blob),
    '--queuePort',
    String(ports.queue),
    '--tablePort',
    String(ports.table),
    '--disableTelemetry',
    '--skipApiVersionCheck',
    '--loose',
    '--silent',
  ];
  if (options.location) {
    mkdirSync(options.location, { recursive: true });
    args.push('--location', options.location, '--debug', path.join(options.location, 'debug.log'));
  } else {
    // In memory Azurite reserves half the machine's RAM for extents unless told otherwise.
    args.push('--inMemoryPersistence', '--extentMemoryLimit', '256');
  }
  const child: ChildProcess = spawn(process.execPath, args, {
    stdio: ['ignore', options.silent === false ? 'inherit' : 'ignore', 'pipe'],
    cwd: LOCAL_DIR,
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

  const deadline = Date.now() + 30_000;
  for (;;) {
    const open = await Promise.all([ports.blob, ports.queue, ports.table].map(portOpen));
    if (open.every(Boolean)) break;
    if (child.exitCode !== null) throw new Error(`Azurite exited (${child.exitCode}): ${stderr.trim()}`);
    if (Date.now() > deadline) {
      child.kill();
      throw new Error(`Azurite did not open ports ${JSON.stringify(ports)} within 30 s`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    connectionString: connectionStringFor(ports),
    queueUrl: `http://127.0.0.1:${ports.queue}/${ACCOUNT}`,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
