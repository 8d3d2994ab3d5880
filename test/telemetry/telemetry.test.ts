import { DEV_USERS, devUser } from '../../dev/standins/identities';
import type { Envelope, IngestionStandIn } from '../../dev/standins/ingestion';
import { enqueueDeferredNotification } from '../../shared/queue/enqueue';
import { TestQueues } from '../support/queue';
import { eventually, startTestApp, type TestApp } from '../support/stack';
import { hostProbe, loadedPackage, nonLoopback, telemetryModules, unusedTelemetryModules } from './probe';

// Telemetry on, end to end: the real SDK in the local host's process sends to the ingestion
// stand-in, and the assertions are on the envelopes that arrived there, as they would in Azure.

const JWT = /eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/;

const probe = hostProbe();
let app: TestApp;
let ingestion: IngestionStandIn;
let queues: TestQueues;
const usersSeen = new Set<string>();

beforeAll(async () => {
  app = await startTestApp({
    telemetry: true,
    settings: {
      ...probe.settings,
      // Export promptly so that the test waits seconds, not a minute.
      OTEL_BSP_SCHEDULE_DELAY: '200',
      OTEL_BLRP_SCHEDULE_DELAY: '200',
      OTEL_METRIC_EXPORT_INTERVAL: '1000',
    },
  });
  ingestion = app.stack.ingestion!;
  queues = new TestQueues(app.stack.settings.AzureWebJobsStorage!);
});

afterAll(async () => {
  if (!app) return;
  // Refresh tokens live only in the vault: read them before the stack goes.
  const refreshTokens = [...usersSeen]
    .map((oid) => app.stack.keyVault!.current(`rt-${devUser(oid).tid}-${oid}`)?.value)
    .filter((v): v is string => typeof v === 'string');
  await app.stop();
  const all = JSON.stringify(ingestion.envelopes);
  expect(ingestion.envelopes.length).toBeGreaterThan(0);
  // No token the stand-ins issued, no refresh token, no name or e-mail address, in any envelope.
  expect(all).not.toMatch(JWT);
  expect(refreshTokens.length).toBeGreaterThan(0);
  for (const secret of refreshTokens) expect(all).not.toContain(secret);
  for (const user of DEV_USERS) {
    expect(all).not.toContain(user.upn);
    expect(all).not.toContain(user.displayName);
  }
  // The notifications' content never leaves either.
  expect(all).not.toContain('Your order shipped');
  // Loopback only: nothing asked the instance-metadata address, statsbeat or any Microsoft host.
  const sockets = probe.sockets();
  expect(sockets.length).toBeGreaterThan(0);
  expect(sockets.filter((s) => s.startsWith('169.254.169.254'))).toEqual([]);
  expect(nonLoopback(sockets)).toEqual([]);
  expect(ingestion.unexpected).toEqual([]);
  // The positive control of the telemetry-off test: here the SDK was loaded.
  const modules = probe.modules();
  expect(telemetryModules(modules).length).toBeGreaterThan(0);
  // Only the instrumentations the app uses were loaded: none for databases or logging libraries,
  // no OTLP/Zipkin/Prometheus exporter or B3/Jaeger propagator, even though the SDK requires them all.
  expect(unusedTelemetryModules(modules)).toEqual([]);
  for (const used of [
    '@opentelemetry/instrumentation-http',
    '@opentelemetry/instrumentation-undici',
    '@azure/monitor-opentelemetry-exporter',
  ]) {
    expect([used, loadedPackage(modules, used)]).toEqual([used, true]);
  }
});

async function tokenFor(name: string): Promise<{ token: string; oid: string }> {
  const user = devUser(name);
  usersSeen.add(user.oid);
  return { token: await app.stack.entra!.issueUserToken({ user: user.oid }), oid: user.oid };
}

async function send(token: string, body: Record<string, unknown>): Promise<Response> {
  return fetch(`${app.api}/notifications`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
}

const props = (e: Envelope): Record<string, string> => e.data?.baseData?.properties ?? {};
const operationOf = (e: Envelope): string | undefined => e.tags?.['ai.operation.id'];

function waitFor(what: string, find: () => Envelope | undefined): Promise<Envelope> {
  return eventually(find, { what, timeoutMs: 20_000 });
}

/** The host's request for an invocation, and the app's dependencies within its operation. */
async function operation(
  requestMatches: (e: Envelope) => boolean,
  services: string[],
): Promise<{ request: Envelope; dependencies: Envelope[] }> {
  const request = await waitFor('the host request', () =>
    ingestion.ofType('RequestData').find(requestMatches),
  );
  const dependencies = await eventually(
    () => {
      const found = ingestion
        .ofType('RemoteDependencyData')
        .filter((d) => operationOf(d) === operationOf(request));
      const named = new Set(found.map((d) => props(d).targetService));
      return services.every((s) => named.has(s)) ? found : undefined;
    },
    { what: `dependencies on ${services.join(', ')}`, timeoutMs: 20_000 },
  );
  return { request, dependencies };
}

function expectDependency(
  dependencies: Envelope[],
  service: string,
  resultCode: string,
  success = true,
): void {
  const match = dependencies.find(
    (d) => props(d).targetService === service && d.data?.baseData?.resultCode === resultCode,
  );
  expect(match).toBeDefined();
  const data = match!.data!.baseData!;
  // The target is the host; the SDK keeps the port for http/https calls and drops it for fetch.
  expect(data).toMatchObject({ type: 'Http', success });
  expect(data.target).toMatch(/^127\.0\.0\.1(:\d+)?$/);
  expect(data.name).toEqual(expect.any(String));
  expect(data.duration).toMatch(/^(\d+\.)?\d\d:\d\d:\d\d\.\d+$/);
}

it('records a send: the event, the host request it joins, and a dependency per call', async () => {
  const { token, oid } = await tokenFor('telemetry-sent');
  const res = await send(token, { payload: { visualContent: { title: 'Your order shipped' } } });
  expect(res.status).toBe(201);
  const { appNotificationId } = (await res.json()) as { appNotificationId: string };

  const event = await waitFor('NotificationSent', () =>
    ingestion.events('NotificationSent').find((e) => props(e).appNotificationId === appNotificationId),
  );
  expect(props(event)).toMatchObject({
    tenantId: devUser(oid).tid,
    userId: oid,
    appNotificationId,
    outcome: 'sent',
    trigger: 'http',
  });
  const { request, dependencies } = await operation(
    (r) => operationOf(r) === operationOf(event),
    ['identity', 'graph', 'keyVault'],
  );
  // The event joins the host's request: same operation, the request as its parent.
  expect(request.data?.baseData).toMatchObject({
    name: 'sendNotification',
    responseCode: '201',
    success: true,
  });
  expect(event.tags?.['ai.operation.parentId']).toBe(request.data?.baseData?.id);
  for (const d of dependencies) expect(d.tags?.['ai.operation.parentId']).toBe(request.data?.baseData?.id);
  expectDependency(dependencies, 'identity', '200');
  expectDependency(dependencies, 'graph', '201');
  expect(dependencies.some((d) => props(d).targetService === 'keyVault' && d.data?.baseData?.success)).toBe(
    true,
  );
  const stored = await waitFor('RefreshTokenStored', () =>
    ingestion.events('RefreshTokenStored').find((e) => props(e).userId === oid),
  );
  expect(props(stored)).toMatchObject({ tenantId: devUser(oid).tid, cause: 'changed' });
  expect(operationOf(stored)).toBe(operationOf(request));
});

it('records a scheduled send with the invocation as the correlation id, and the queue write', async () => {
  const { token, oid } = await tokenFor('telemetry-scheduled');
  const deliverAt = new Date(Date.now() + 60 * 60_000).toISOString();
  const res = await send(token, { payload: { visualContent: { title: 'Your order shipped' } }, deliverAt });
  expect(res.status).toBe(202);
  const event = await waitFor('NotificationScheduled', () =>
    ingestion.events('NotificationScheduled').find((e) => props(e).userId === oid),
  );
  const { request, dependencies } = await operation(
    (r) => operationOf(r) === operationOf(event),
    ['identity', 'storage'],
  );
  expect(request.data?.baseData).toMatchObject({ name: 'sendNotification', responseCode: '202' });
  expect(props(event)).toMatchObject({
    outcome: 'scheduled',
    correlationId: props(request).InvocationId,
  });
  expectDependency(dependencies, 'storage', '201');
});

it('records a dead-lettered message with its reason and the sender correlation id', async () => {
  const oid = devUser('telemetry-unregistered').oid;
  await enqueueDeferredNotification(queues.queue, {
    userId: oid,
    tenantId: devUser(oid).tid,
    notification: { payload: { visualContent: { title: 'Your order shipped' } } },
    correlationId: 'corr-telemetry-dead-1',
  });
  const event = await waitFor('NotificationDeadLettered', () =>
    ingestion.events('NotificationDeadLettered').find((e) => props(e).userId === oid),
  );
  expect(props(event)).toMatchObject({
    reason: 'not_registered',
    outcome: 'dead-lettered',
    correlationId: 'corr-telemetry-dead-1',
    trigger: 'queue',
  });
  const { request, dependencies } = await operation(
    (r) => operationOf(r) === operationOf(event),
    ['keyVault', 'storage'],
  );
  expect(request.data?.baseData).toMatchObject({ name: 'deliverDeferred', responseCode: '0', success: true });
  // The vault said the user has no stored token: a 404, recorded as such.
  expect(
    dependencies.some((d) => props(d).targetService === 'keyVault' && d.data?.baseData?.resultCode === '404'),
  ).toBe(true);
});

it('records a Graph 429 as a failed dependency, a failed send and a 503 request', async () => {
  const { token, oid } = await tokenFor('telemetry-throttled');
  app.stack.graph!.faults.failNext(1, { status: 429, retryAfter: 7 });
  const res = await send(token, { payload: { visualContent: { title: 'Your order shipped' } } });
  expect(res.status).toBe(503);
  const event = await waitFor('NotificationFailed', () =>
    ingestion.events('NotificationFailed').find((e) => props(e).userId === oid),
  );
  expect(props(event)).toMatchObject({ reason: 'upstream_unavailable', outcome: 'upstream_unavailable' });
  expect(props(event).appNotificationId).toEqual(expect.any(String));
  const { request, dependencies } = await operation((r) => operationOf(r) === operationOf(event), ['graph']);
  expect(request.data?.baseData).toMatchObject({ responseCode: '503', success: false });
  expectDependency(dependencies, 'graph', '429', false);
});

it('exports the send-duration metric by outcome', async () => {
  const metric = await waitFor('NotificationSendDuration', () =>
    ingestion
      .ofType('MetricData')
      .find((m) => m.data?.baseData?.metrics?.some((x) => x.name === 'NotificationSendDuration')),
  );
  expect(props(metric).outcome).toEqual(expect.any(String));
  expect(props(metric).trigger).toMatch(/^(http|queue)$/);
});

it('records a send-now whose refresh-token write failed, with the user, so operators can find them', async () => {
  const { token, oid } = await tokenFor('telemetry-vault-down');
  // Past the Key Vault client's own retries: the write fails, the send does not.
  app.stack.keyVault!.faults.failNext(20, { status: 503 });
  try {
    const res = await send(token, { payload: { visualContent: { title: 'Your order shipped' } } });
    expect(res.status).toBe(201);
  } finally {
    app.stack.keyVault!.faults.clear();
  }
  const event = await waitFor('RefreshTokenStoreFailed', () =>
    ingestion.events('RefreshTokenStoreFailed').find((e) => props(e).userId === oid),
  );
  expect(props(event)).toMatchObject({
    tenantId: devUser(oid).tid,
    reason: 'upstream_unavailable',
    trigger: 'http',
  });
  // The log line names the user (its properties may span a few lines of the host's output).
  const output = app.host.output();
  const at = output.indexOf('Storing the refresh token failed');
  expect(at).toBeGreaterThanOrEqual(0);
  expect(output.slice(at, at + 600)).toContain(oid);
});

it('records Teams sends with the channel, and a Graph 429 on one as TeamsThrottled', async () => {
  const { token, oid } = await tokenFor('telemetry-teams');
  const bob = devUser('bob');
  const activity = {
    recipient: { userId: bob.oid },
    activityType: 'systemDefault',
    templateParameters: [{ name: 'systemDefaultText', value: 'approved your expense report' }],
    topic: { source: 'text', value: 'Expense #42', webUrl: 'https://teams.microsoft.com/l/entity/x' },
  };
  const postActivity = () =>
    fetch(`${app.api}/activities`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify(activity),
    });
  const sent = await postActivity();
  expect(sent.status).toBe(201);
  const { id } = (await sent.json()) as { id: string };
  const event = await waitFor('NotificationSent for the Teams send', () =>
    ingestion.events('NotificationSent').find((e) => props(e).activityId === id),
  );
  expect(props(event)).toMatchObject({ channel: 'teams', userId: oid, trigger: 'http' });

  app.stack.graph!.teamsFaults.failNext(1, { status: 429, retryAfter: 2 });
  expect((await postActivity()).status).toBe(503);
  const throttled = await waitFor('TeamsThrottled', () =>
    ingestion.events('TeamsThrottled').find((e) => props(e).tenantId === devUser(oid).tid),
  );
  expect(props(throttled)).toMatchObject({ channel: 'teams', reason: 'graph', delayMs: '2000' });
});
