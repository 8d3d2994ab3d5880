import { app, type HttpResponseInit } from '@azure/functions';
import { TableClient } from '@azure/data-tables';
import { randomUUID } from 'node:crypto';

// The floor function app: the least a function can do to deliver a notification — one Graph POST
// with a Graph token it already holds (BENCH_FLOOR_GRAPH_TOKEN, acquired by the benchmark before
// the host starts), and the delivery-ledger writes the contract asks of every notification since
// the ledger: a send now records its entry once (an upsert), a queued message is claimed before its
// POST (an insert) and recorded after it (a merge). No caller verification, no OBO, no vault, no schema. The benchmark runs it on
// the same local host, Azurite and Graph stand-in as the app, so that the app's figures can be read
// as a ratio to it. Compiled with the rest of bench/ and copied next to a package.json and the
// repository's host.json (same queue settings) under .local/bench/floor-app by bench/floor.ts.

const graphUrl = `${process.env.GRAPH_BASE_URL ?? ''}/me/notifications`;
const graphToken = process.env.BENCH_FLOOR_GRAPH_TOKEN ?? '';
const targetHostName = process.env.TARGET_HOST_NAME || 'graph-notify.local';

const ledger = TableClient.fromConnectionString(process.env.AzureWebJobsStorage ?? '', 'floorledger', {
  allowInsecureConnection: true,
});
let tableReady: Promise<unknown> | undefined;

async function record(write: 'upsert' | 'claim' | 'sent', appNotificationId: string): Promise<void> {
  await (tableReady ??= ledger.createTable());
  const at = new Date().toISOString();
  const entity = { partitionKey: 'floor', rowKey: appNotificationId, updatedAt: at };
  if (write === 'claim') await ledger.createEntity({ ...entity, status: 'sending' });
  else await ledger.upsertEntity({ ...entity, status: 'sent', sentAt: at }, 'Merge');
}

/** What the floor measured itself, read by the benchmark through `GET /api/floor-stats`. */
const stats = { posts: 0, graphMsTotal: 0, inFlight: 0, maxInFlight: 0 };

async function postToGraph(title: string, appNotificationId: string): Promise<number> {
  stats.inFlight++;
  stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
  const started = performance.now();
  try {
    const res = await fetch(graphUrl, {
      method: 'POST',
      headers: { authorization: `Bearer ${graphToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        targetHostName,
        appNotificationId,
        payload: { visualContent: { title } },
      }),
    });
    await res.arrayBuffer();
    return res.status;
  } finally {
    stats.inFlight--;
    stats.posts++;
    stats.graphMsTotal += performance.now() - started;
  }
}

app.http('notifications', {
  methods: ['POST'],
  authLevel: 'anonymous',
  route: 'notifications',
  handler: async (request): Promise<HttpResponseInit> => {
    await request.text();
    const id = randomUUID();
    const status = await postToGraph('Floor', id);
    if (status === 201) await record('upsert', id);
    return { status: status === 201 ? 201 : 502 };
  },
});

app.storageQueue('floorDrain', {
  queueName: '%BENCH_FLOOR_QUEUE%',
  connection: 'AzureWebJobsStorage',
  handler: async (_message, context): Promise<void> => {
    const messageId = context.triggerMetadata?.id;
    const id = typeof messageId === 'string' ? messageId : randomUUID();
    await record('claim', id);
    const status = await postToGraph('Floor deferred', id);
    if (status !== 201) throw new Error(`Graph answered ${status}`);
    await record('sent', id);
  },
});

app.http('floorStats', {
  methods: ['GET'],
  authLevel: 'anonymous',
  route: 'floor-stats',
  handler: (): HttpResponseInit => ({
    jsonBody: {
      posts: stats.posts,
      graphMsMean: stats.posts ? stats.graphMsTotal / stats.posts : 0,
      maxInFlight: stats.maxInFlight,
    },
  }),
});
