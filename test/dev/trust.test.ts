import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { APP_ROOT } from '../../dev/root';
import { createLoopbackTls, ensureLocalTls, trustedCaFile, type LocalTls } from '../../dev/tls';
import { startTestApp, type TestApp } from '../support/stack';

// `npm start` with the user's own CA in NODE_EXTRA_CA_CERTS (a TLS-inspecting proxy, a private
// endpoint, a test rig): the endpoints the settings name are served by a CA the stack did not
// create, and the function host must still reach them, and the stand-ins it did start.

interface ForeignService {
  url: string;
  /** `METHOD path?query` of every request it received. */
  received: string[];
  close(): Promise<void>;
}

/**
 * Plays the identity service, Key Vault and Graph as far as `/api/health` asks them, over HTTPS
 * with a certificate from `tls` (paths: `/{tenant}/v2.0/…`, `/vault/…`, `/graph/beta/…`).
 */
async function startForeignService(tls: { cert: string; key: string }): Promise<ForeignService> {
  const received: string[] = [];
  const server: Server = createServer({ cert: tls.cert, key: tls.key }, (req, res) => {
    received.push(`${req.method} ${req.url}`);
    const url = new URL(req.url ?? '/', 'https://127.0.0.1');
    if (url.pathname.endsWith('/v2.0/.well-known/openid-configuration')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ issuer: `https://127.0.0.1${url.pathname.split('/v2.0/')[0]}/v2.0` }));
    } else if (url.pathname.startsWith('/vault/') || url.pathname.startsWith('/graph/')) {
      // What Key Vault and Graph answer an anonymous request: up, but who are you.
      res.writeHead(401, { 'www-authenticate': 'Bearer' });
      res.end();
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `https://127.0.0.1:${port}`,
    received,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

let dir: string;
let foreignCa: string;
let foreignCaPath: string;
let foreign: ForeignService;
let local: LocalTls;
/** Bundles written under .local/tls for this run's one-off foreign CA, removed at the end. */
const bundles = new Set<string>();

beforeAll(async () => {
  const tls = await createLoopbackTls('graph-notify test: a CA the stack did not create');
  foreignCa = tls.ca;
  dir = mkdtempSync(path.join(tmpdir(), 'graph-notify-trust-'));
  foreignCaPath = path.join(dir, 'foreign-ca.pem');
  writeFileSync(foreignCaPath, tls.ca);
  foreign = await startForeignService(tls);
  local = await ensureLocalTls();
});

afterAll(async () => {
  await foreign?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
  for (const file of bundles) rmSync(file, { force: true });
});

/** Expects `file` to be a bundle of the foreign CA and the local CA, and has it removed later. */
function expectBundle(file: string | undefined): void {
  expect(file).toBeDefined();
  expect(path.dirname(file!)).toBe(path.dirname(local.caPath));
  expect(path.basename(file!)).toMatch(/^trust-[0-9a-f]{16}\.pem$/);
  // Only a file shown to be such a bundle is removed at the end (never the local CA itself).
  bundles.add(file!);
  const text = readFileSync(file!, 'utf8');
  expect(text).toContain(foreignCa.trim());
  expect(text).toContain(local.ca.trim());
}

describe('trustedCaFile', () => {
  it('keeps the environment’s CA as it is when no stand-in needs the local CA', () => {
    expect(trustedCaFile(foreignCaPath, undefined)).toBe(foreignCaPath);
    expect(trustedCaFile(undefined, undefined)).toBeUndefined();
  });

  it('names the local CA when the environment names none', () => {
    expect(trustedCaFile(undefined, local)).toBe(local.caPath);
    expect(trustedCaFile('', local)).toBe(local.caPath);
  });

  it('bundles both when both are needed, once per content', () => {
    const file = trustedCaFile(foreignCaPath, local);
    expectBundle(file);
    expect(trustedCaFile(foreignCaPath, local)).toBe(file);
    // A file that already holds the local CA (that bundle, or the local CA itself) is used as it is.
    expect(trustedCaFile(file, local)).toBe(file);
    expect(trustedCaFile(local.caPath, local)).toBe(local.caPath);
  });

  it('refuses a NODE_EXTRA_CA_CERTS it cannot read rather than dropping it', () => {
    const missing = path.join(dir, 'missing.pem');
    expect(() => trustedCaFile(missing, local)).toThrow(`NODE_EXTRA_CA_CERTS names ${missing}`);
  });
});

async function health(app: TestApp): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${app.api}/health`);
  return { status: res.status, body: await res.json() };
}

describe('npm start with every endpoint given and NODE_EXTRA_CA_CERTS naming their CA', () => {
  let app: TestApp;
  const tenant = randomUUID();
  beforeAll(async () => {
    foreign.received.length = 0;
    app = await startTestApp({
      settings: {
        NODE_EXTRA_CA_CERTS: foreignCaPath,
        ENTRA_AUTHORITY_HOST: foreign.url,
        ENTRA_TENANT_ID: tenant,
        ENTRA_CLIENT_ID: randomUUID(),
        ENTRA_CLIENT_SECRET: 'test-secret-not-used',
        KEY_VAULT_URL: `${foreign.url}/vault`,
        AZURE_TENANT_ID: tenant,
        AZURE_CLIENT_ID: randomUUID(),
        AZURE_CLIENT_SECRET: 'test-secret-not-used',
        AZURE_AUTHORITY_HOST: foreign.url,
        GRAPH_BASE_URL: `${foreign.url}/graph/beta`,
      },
    });
  });
  afterAll(() => app?.stop());

  it('starts no stand-in and reaches the given endpoints with the environment’s CA', async () => {
    expect([app.stack.entra, app.stack.keyVault, app.stack.graph]).toEqual([undefined, undefined, undefined]);
    expect(await health(app)).toEqual({
      status: 200,
      body: {
        status: 'ok',
        checks: { identity: 'ok', keyVault: 'ok', graph: 'ok', storage: 'ok', ledger: 'ok' },
      },
    });
    // The far side saw the probes: the host really talked to the servers of the foreign CA.
    expect(foreign.received).toEqual(
      expect.arrayContaining([
        `GET /${tenant}/v2.0/.well-known/openid-configuration`,
        'GET /vault/secrets?api-version=7.5',
        'GET /graph/beta/me',
      ]),
    );
  });
});

describe('npm start with only GRAPH_BASE_URL given and NODE_EXTRA_CA_CERTS naming its CA', () => {
  let app: TestApp;
  beforeAll(async () => {
    foreign.received.length = 0;
    app = await startTestApp({
      settings: { NODE_EXTRA_CA_CERTS: foreignCaPath, GRAPH_BASE_URL: `${foreign.url}/graph/beta` },
    });
  });
  afterAll(() => app?.stop());

  it('trusts both the environment’s CA and the stand-ins’ CA', async () => {
    expect(app.stack.graph).toBeUndefined();
    expectBundle(app.stack.settings.NODE_EXTRA_CA_CERTS);
    expect(await health(app)).toEqual({
      status: 200,
      body: {
        status: 'ok',
        checks: { identity: 'ok', keyVault: 'ok', graph: 'ok', storage: 'ok', ledger: 'ok' },
      },
    });
    expect(foreign.received).toContain('GET /graph/beta/me');
    expect(app.stack.entra!.hits.openidConfiguration).toBeGreaterThan(0);
    expect(app.stack.keyVault!.count('challenge') + app.stack.keyVault!.count('list')).toBeGreaterThan(0);
  });
});

describe('dev/with-ca (how `npm test` runs jest) with NODE_EXTRA_CA_CERTS set', () => {
  it('starts the command trusting both the environment’s CA and the local CA', async () => {
    const standIn = createServer({ cert: local.cert, key: local.key }, (_req, res) => res.end('local'));
    await new Promise<void>((resolve) => standIn.listen(0, '127.0.0.1', resolve));
    const address = standIn.address();
    const localUrl = `https://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/`;
    try {
      // The command reports what it was started with, and whether each side's TLS was accepted.
      const script = `(async () => {
        const status = (url) => fetch(url).then((r) => r.status, (e) => String(e.cause?.code ?? e));
        console.log(JSON.stringify({
          ca: process.env.NODE_EXTRA_CA_CERTS,
          foreign: await status(${JSON.stringify(`${foreign.url}/graph/beta/me`)}),
          local: await status(${JSON.stringify(localUrl)}),
        }));
      })();`;
      const withCa = path.join(APP_ROOT, 'dist', 'dev', 'with-ca.js');
      expect(existsSync(withCa)).toBe(true);
      const { stdout } = await promisify(execFile)(
        process.execPath,
        [withCa, process.execPath, '-e', script],
        {
          env: { ...process.env, NODE_EXTRA_CA_CERTS: foreignCaPath },
        },
      );
      const seen = JSON.parse(stdout) as { ca: string; foreign: unknown; local: unknown };
      expectBundle(seen.ca);
      expect(seen).toMatchObject({ foreign: 401, local: 200 });
    } finally {
      await new Promise((resolve) => standIn.close(resolve));
    }
  });
});
