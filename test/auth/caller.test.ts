import { startEntraStandIn, type EntraStandIn } from '../../dev/standins/entra';
import { API_APP, DEV_TENANT_ID, devUser } from '../../dev/standins/identities';
import { SigningKeys } from '../../dev/standins/keys';
import { ensureLocalTls } from '../../dev/tls';
import { CallerVerifier } from '../../shared/auth/caller';
import { loadConfig } from '../../shared/config';
import { eventually } from '../support/stack';

// The caller verifier against the Entra stand-in's real metadata and keys: a verification is
// remembered only for a token that passed, and never past the token's expiry.

let entra: EntraStandIn;

beforeAll(async () => {
  entra = await startEntraStandIn({ tls: await ensureLocalTls(), port: 0 });
});

afterAll(async () => {
  await entra?.close();
});

function verifier(options: ConstructorParameters<typeof CallerVerifier>[1] = {}): CallerVerifier {
  const config = loadConfig({
    ENTRA_TENANT_ID: DEV_TENANT_ID,
    ENTRA_CLIENT_ID: API_APP.clientId,
    ENTRA_CLIENT_SECRET: API_APP.clientSecret,
    ENTRA_AUTHORITY_HOST: entra.url,
    KEY_VAULT_URL: 'https://vault.invalid',
    AzureWebJobsStorage: 'UseDevelopmentStorage=true',
  });
  return new CallerVerifier(config, options);
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  return p.then(
    () => 'accepted',
    (err: unknown) => (err as { code?: string }).code ?? 'error',
  );
}

it('accepts a token again from memory, and not once it has expired', async () => {
  const callers = verifier({ clockToleranceSec: 0 });
  const token = await entra.issueUserToken({ user: devUser('alice').oid, expiresInSec: 2 });
  const first = await callers.verify(`Bearer ${token}`);
  expect(await callers.verify(`Bearer ${token}`)).toBe(first);
  await eventually(() => (Date.now() > first.expiresAt.getTime() + 50 ? true : undefined), {
    what: 'the token to expire',
    timeoutMs: 5000,
  });
  expect(await codeOf(callers.verify(`Bearer ${token}`))).toBe('invalid_token');
});

it('remembers nothing of a token that failed: a forged one is refused every time', async () => {
  const callers = verifier();
  const forged = await entra.issueUserToken({ user: devUser('bob').oid, signingKeys: new SigningKeys() });
  expect(await codeOf(callers.verify(`Bearer ${forged}`))).toBe('invalid_token');
  expect(await codeOf(callers.verify(`Bearer ${forged}`))).toBe('invalid_token');
});

it('keeps at most the configured number of verifications, dropping the oldest', async () => {
  const callers = verifier({ verifiedTokens: 1 });
  const a = await entra.issueUserToken({ user: devUser('alice').oid });
  const b = await entra.issueUserToken({ user: devUser('bob').oid });
  const first = await callers.verify(`Bearer ${a}`);
  await callers.verify(`Bearer ${b}`);
  // a was dropped: verified afresh, a new object with the same claims.
  const again = await callers.verify(`Bearer ${a}`);
  expect(again).not.toBe(first);
  expect(again).toEqual(first);
});
