import { startTestApp, type TestApp } from '../support/stack';

describe('GET /api/health through the local host', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp();
  });
  afterAll(() => app?.stop());

  it('answers 200 when every dependency answers', async () => {
    const res = await fetch(`${app.api}/health`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      status: 'ok',
      checks: { identity: 'ok', keyVault: 'ok', graph: 'ok', storage: 'ok', ledger: 'ok' },
    });
    // The probes reached the stand-ins for real.
    expect(app.stack.entra!.hits.openidConfiguration).toBeGreaterThan(0);
    expect(app.stack.keyVault!.count('challenge') + app.stack.keyVault!.count('list')).toBeGreaterThan(0);
  });

  it('serves only registered routes and methods', async () => {
    expect((await fetch(`${app.api}/nothing-here`)).status).toBe(404);
    expect((await fetch(`${app.api}/health`, { method: 'DELETE' })).status).toBe(405);
  });
});

describe('GET /api/health with a dependency down', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp();
    // The vault goes away before the first health check (whose answer is then cached).
    await app.stack.keyVault!.close();
  });
  afterAll(() => app?.stop());

  it('answers 503 problem+json naming the failing dependency', async () => {
    const res = await fetch(`${app.api}/health`);
    expect(res.status).toBe(503);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    expect(res.headers.get('retry-after')).toBeTruthy();
    const body = (await res.json()) as { code: string; detail: string; checks: Record<string, string> };
    expect(body.code).toBe('dependency_unavailable');
    expect(body.detail).toBe('Unavailable: keyVault');
    expect(body.checks.keyVault).toMatch(/unreachable/);
    expect(body.checks.graph).toBe('ok');
  });
});
