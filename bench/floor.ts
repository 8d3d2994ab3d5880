// The floor function app (bench/floor-app/index.ts) made runnable by the local host, and the Graph
// token it is handed. The app folder lives under .local/ (git- and lint-ignored) so that Node finds
// @azure/functions in the repository's node_modules, as the worker would in a deployed app.
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import path from 'node:path';
import { APP_ROOT } from '../dev/root';
import type { LocalStack } from '../dev/stack';
import { API_APP, DEV_TENANT_ID } from '../dev/standins/identities';

export const FLOOR_QUEUE = 'bench-floor-deferred';

/** Writes the floor app (compiled index.js, package.json, the repository's host.json) and returns its folder. */
export function prepareFloorApp(): string {
  const dir = path.join(APP_ROOT, '.local', 'bench', 'floor-app');
  mkdirSync(dir, { recursive: true });
  copyFileSync(path.join(__dirname, 'floor-app', 'index.js'), path.join(dir, 'index.js'));
  // Same host.json as the app: same queue batch size, threshold, polling and encoding.
  copyFileSync(path.join(APP_ROOT, 'host.json'), path.join(dir, 'host.json'));
  writeFileSync(
    path.join(dir, 'package.json'),
    `${JSON.stringify({ name: 'graph-notify-bench-floor', private: true, main: 'index.js' }, null, 2)}\n`,
  );
  return dir;
}

/** A Graph token for the user `assertion` belongs to: the raw OBO grant, as bench/baseline-server.ts makes it. */
export async function graphTokenFor(stack: LocalStack, assertion: string): Promise<string> {
  // node:https with the stand-ins' CA: this process's fetch does not trust it (NODE_EXTRA_CA_CERTS
  // is read only as a process starts, and the benchmark is not started with it).
  const form = new URLSearchParams({
    grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer',
    client_id: API_APP.clientId,
    client_secret: API_APP.clientSecret,
    assertion,
    scope: 'https://graph.microsoft.com/Notifications.ReadWrite.CreatedByApp offline_access',
    requested_token_use: 'on_behalf_of',
  }).toString();
  const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = request(
      stack.entra!.tokenEndpoint(DEV_TENANT_ID),
      { method: 'POST', ca: stack.tls.ca, headers: { 'content-type': 'application/x-www-form-urlencoded' } },
      (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (data += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: data }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(form);
  });
  const body = JSON.parse(text) as { access_token?: string };
  if (status !== 200 || !body.access_token) throw new Error(`floor: the OBO grant answered ${status}`);
  return body.access_token;
}

/** The floor host's settings: the app's, plus the token and queue the floor function uses. */
export function floorSettings(settings: Record<string, string>, graphToken: string): Record<string, string> {
  return { ...settings, BENCH_FLOOR_GRAPH_TOKEN: graphToken, BENCH_FLOOR_QUEUE: FLOOR_QUEUE };
}

export interface FloorStats {
  posts: number;
  graphMsMean: number;
  maxInFlight: number;
}

export async function floorStats(hostUrl: string): Promise<FloorStats> {
  const res = await fetch(`${hostUrl}/api/floor-stats`, { signal: AbortSignal.timeout(10_000) });
  if (!res.ok) throw new Error(`floor-stats answered ${res.status}`);
  return (await res.json()) as FloorStats;
}
