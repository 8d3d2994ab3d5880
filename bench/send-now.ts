// Sections 1 and 2: the same send-now load three ways — (a) the app through the local Functions
// host, (b) the sample's design, (c) the floor — at each concurrency, with identity and Key Vault
// round trips counted on the stand-ins' side.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { LocalStack } from '../dev/stack';
import { API_APP, DEV_TENANT_ID } from '../dev/standins/identities';
import { postJson, round, runClosedLoop, type LoadResult } from './load';
import { tableCostPer, type TableMeter } from './table-meter';

export type Design = 'app' | 'sample' | 'floor';

export interface SendNowRow extends LoadResult {
  design: Design;
  users: number;
  identityCallsPerNotification: number;
  keyVaultOpsPerNotification: number;
  /** The delivery ledger's table requests per notification, writes among them, and their time (app only). */
  tableOpsPerNotification: number;
  tableWritesPerNotification: number;
  tableMsPerNotification: number;
}

export interface BaselineServer {
  url: string;
  stop(): Promise<void>;
}

/** Starts bench/baseline-server.js (`sample` or `floor`) in its own process, trusting the local CA. */
export async function startBaselineServer(
  mode: 'sample' | 'floor',
  stack: LocalStack,
): Promise<BaselineServer> {
  const script = path.join(__dirname, 'baseline-server.js');
  const child: ChildProcess = spawn(process.execPath, [script, mode], {
    env: {
      PATH: process.env.PATH ?? '',
      NODE_EXTRA_CA_CERTS: stack.settings.NODE_EXTRA_CA_CERTS ?? stack.tls.caPath,
      BENCH_TOKEN_ENDPOINT: stack.entra!.tokenEndpoint(DEV_TENANT_ID),
      BENCH_CLIENT_ID: API_APP.clientId,
      BENCH_CLIENT_SECRET: API_APP.clientSecret,
      BENCH_GRAPH_SCOPES: 'https://graph.microsoft.com/Notifications.ReadWrite.CreatedByApp offline_access',
      BENCH_GRAPH_BASE_URL: stack.settings.GRAPH_BASE_URL!,
      BENCH_TARGET_HOST_NAME: stack.settings.TARGET_HOST_NAME ?? 'graph-notify.local',
      BENCH_STORAGE: stack.settings.AzureWebJobsStorage!,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const port = await new Promise<number>((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => reject(new Error(`${mode} server did not start:\n${output}`)), 15_000);
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      const match = /listening on (\d+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${mode} server exited with ${code}:\n${output}`));
    });
  });
  return {
    url: `http://127.0.0.1:${port}`,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

const notification = (i: number): unknown => ({
  payload: { visualContent: { title: `Benchmark ${i}`, body: 'sent by npm run bench' } },
});

/**
 * Runs `requests` notifications (after `warmup` unmeasured ones) against `url` with `tokens`
 * round-robin (each user reuses its token), counting what reached the identity service and the vault.
 */
export async function measureDesign(options: {
  design: Design;
  url: string;
  tokens: readonly string[];
  stack: LocalStack;
  concurrency: number;
  requests: number;
  warmup: number;
  /** Counts the ledger's table requests (the app's host points at it). */
  table: TableMeter;
}): Promise<SendNowRow> {
  const { stack, tokens } = options;
  const send = (i: number): Promise<number> =>
    postJson(options.url, tokens[i % tokens.length]!, notification(i));
  await runClosedLoop({ count: options.warmup, concurrency: options.concurrency, expectStatus: 201, send });
  stack.graph!.reset();
  const identityBefore = stack.entra!.requests.length;
  const vaultBefore = stack.keyVault!.operations.length;
  const tableBefore = options.table.counts();
  const result = await runClosedLoop({
    count: options.requests,
    concurrency: options.concurrency,
    expectStatus: 201,
    send,
  });
  const identity = stack.entra!.requests.length - identityBefore;
  const vault = stack.keyVault!.operations.length - vaultBefore;
  const table = tableCostPer(tableBefore, options.table.counts(), options.requests);
  stack.graph!.reset();
  return {
    design: options.design,
    users: tokens.length,
    ...result,
    identityCallsPerNotification: round(identity / options.requests, 3),
    keyVaultOpsPerNotification: round(vault / options.requests, 3),
    tableOpsPerNotification: table.tableOpsPer,
    tableWritesPerNotification: table.tableWritesPer,
    tableMsPerNotification: table.tableMsPer,
  };
}
