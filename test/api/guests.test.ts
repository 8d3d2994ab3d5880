import { decodeJwt } from 'jose';
import { devUser, DEV_TENANT_ID, PARTNER_TENANT_ID } from '../../dev/standins/identities';
import { enqueueDeferredNotification } from '../../shared/queue/enqueue';
import { TestQueues } from '../support/queue';
import { eventually, startTestApp, type TestApp } from '../support/stack';

// B2B guests through the local host. A guest's token names the guest object in this tenant (`oid`,
// `tid`), while Entra's client_info, and so msal's account, names the home account in the partner
// tenant. Everything the app keeps is keyed by the caller's `tid`/`oid`: that is what queue
// messages name.

let app: TestApp;
let queues: TestQueues;
const gina = devUser('gina');
const secretName = `rt-${gina.tid}-${gina.oid}`;

beforeAll(async () => {
  app = await startTestApp();
  queues = new TestQueues(app.stack.settings.AzureWebJobsStorage!);
});

afterAll(async () => {
  await app?.stop();
});

async function guestToken(): Promise<string> {
  return app.stack.entra!.issueUserToken({ user: gina.oid });
}

it('the stand-in issues guest accounts as Entra does: this tenant in the token, the home tenant in idp', async () => {
  const claims = decodeJwt(await guestToken());
  expect(claims).toMatchObject({
    oid: gina.oid,
    tid: DEV_TENANT_ID,
    idp: `https://sts.windows.net/${PARTNER_TENANT_ID}/`,
  });
  expect(gina.home).toEqual({ oid: expect.any(String), tid: PARTNER_TENANT_ID });
  expect(gina.home!.oid).not.toBe(gina.oid);
});

it('a guest can send now: 201, and the refresh token is stored under the caller tid/oid', async () => {
  const res = await fetch(`${app.api}/notifications`, {
    method: 'POST',
    headers: { authorization: `Bearer ${await guestToken()}`, 'content-type': 'application/json' },
    body: JSON.stringify({ payload: { visualContent: { title: 'Hello, guest' } } }),
  });
  expect(res.status).toBe(201);
  expect(app.stack.graph!.received(gina.oid)).toHaveLength(1);
  await eventually(() => app.stack.keyVault!.current(secretName), {
    what: 'the guest refresh token in the vault',
  });
});

it('a guest can register (PUT /api/me/registration → 204, a new version in the vault)', async () => {
  const before = app.stack.keyVault!.versionCount(secretName);
  const res = await fetch(`${app.api}/me/registration`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${await guestToken()}` },
  });
  expect(res.status).toBe(204);
  expect(app.stack.keyVault!.versionCount(secretName)).toBe(before + 1);
});

it("a guest's deferred send is delivered with the stored refresh token", async () => {
  const refreshesBefore = app.stack.entra!.count('refresh_token');
  await enqueueDeferredNotification(queues.queue, {
    userId: gina.oid,
    tenantId: gina.tid,
    notification: { payload: { visualContent: { title: 'Later, guest' } } },
  });
  await eventually(
    () => app.stack.graph!.received(gina.oid).find((n) => JSON.stringify(n.body).includes('Later, guest')),
    { what: "the guest's deferred notification at Graph", timeoutMs: 30_000 },
  );
  expect(app.stack.entra!.count('refresh_token')).toBe(refreshesBefore + 1);
  expect(await queues.poisoned()).toEqual([]);
});
