// The two designs the app is measured against, each served over the same kind of HTTP hop as the
// app (its own Node process, plain HTTP on loopback), so that the comparison differs only in what
// happens behind the hop:
//
// - `sample`: what Microsoft's sample controller does for every notification — the raw OBO grant
//   (client secret, assertion = the caller's token, Graph scope + offline_access) to the token
//   endpoint, then the Graph POST. No validation of the caller's token, no caching.
// - `floor`: the Graph POST with a Graph token acquired beforehand (`POST /prepare` does the OBO once
//   per caller token, untimed), then the one write the contract asks of every notification since
//   the delivery ledger: its entry, upserted with @azure/data-tables into the same Azurite.
//   Nothing the app could do per notification is cheaper.
//
// Started by bench/run.ts with NODE_EXTRA_CA_CERTS (the stand-ins' CA); prints `listening on <port>`.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { TableClient } from '@azure/data-tables';

const mode = process.argv[2];
const tokenEndpoint = required('BENCH_TOKEN_ENDPOINT');
const clientId = required('BENCH_CLIENT_ID');
const clientSecret = required('BENCH_CLIENT_SECRET');
const graphScope = required('BENCH_GRAPH_SCOPES');
const graphUrl = `${required('BENCH_GRAPH_BASE_URL')}/me/notifications`;
const targetHostName = required('BENCH_TARGET_HOST_NAME');

/** Caller token → Graph token and the caller's ledger partition, filled by `/prepare` (floor only). */
const prepared = new Map<string, { graphToken: string; partitionKey: string }>();
const ledger =
  mode === 'floor'
    ? TableClient.fromConnectionString(required('BENCH_STORAGE'), 'floorledger', {
        allowInsecureConnection: true,
      })
    : undefined;

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

async function onBehalfOf(assertion: string): Promise<string> {
  const res = await fetch(tokenEndpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer',
      client_id: clientId,
      client_secret: clientSecret,
      assertion,
      scope: graphScope,
      requested_token_use: 'on_behalf_of',
    }).toString(),
  });
  const body = (await res.json()) as { access_token?: string };
  if (!res.ok || !body.access_token) throw new Error(`OBO answered ${res.status}`);
  return body.access_token;
}

async function postToGraph(
  graphToken: string,
  appNotificationId: string,
  request: Record<string, unknown>,
): Promise<number> {
  const res = await fetch(graphUrl, {
    method: 'POST',
    headers: { authorization: `Bearer ${graphToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ targetHostName, appNotificationId, ...request }),
  });
  await res.arrayBuffer();
  return res.status;
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const assertion = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
  const text = await readBody(req);
  if (req.url === '/prepare') {
    const graphToken = await onBehalfOf(assertion);
    prepared.set(assertion, { graphToken, partitionKey: `floor|${prepared.size}` });
    await ledger?.createTable();
    res.writeHead(204).end();
    return;
  }
  const request = JSON.parse(text) as Record<string, unknown>;
  const caller = mode === 'sample' ? undefined : prepared.get(assertion);
  const graphToken = mode === 'sample' ? await onBehalfOf(assertion) : caller?.graphToken;
  if (!graphToken) {
    res.writeHead(401).end();
    return;
  }
  const appNotificationId = randomUUID();
  const status = await postToGraph(graphToken, appNotificationId, request);
  if (caller && ledger && status === 201) {
    const at = new Date().toISOString();
    await ledger.upsertEntity(
      {
        partitionKey: caller.partitionKey,
        rowKey: appNotificationId,
        status: 'sent',
        updatedAt: at,
        sentAt: at,
      },
      'Merge',
    );
  }
  res.writeHead(status === 201 ? 201 : 502, { 'content-length': '0' }).end();
}

if (mode !== 'sample' && mode !== 'floor') throw new Error('usage: baseline-server.js sample|floor');
const server = createServer((req, res) => {
  handle(req, res).catch(() => {
    if (!res.headersSent) res.writeHead(500).end();
    else res.destroy();
  });
});
server.listen(0, '127.0.0.1', () => {
  console.log(`listening on ${(server.address() as AddressInfo).port}`);
});
process.once('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
