// `npm run token -- --user alice [--tenant <tid>] [--scope <scope>]`: prints one access token for
// this API, as a signed-in client app would hold it, and nothing else on stdout, so that
// `TOKEN=$(npm run --silent token -- --user alice)` works. Development only: it signs in with the
// resource-owner password grant, which the Entra stand-in accepts for any dev user.
import { request } from 'node:https';
import { parseArgs } from 'node:util';
import { DEFAULT_PORTS } from './ports';
import { API_APP, CLIENT_APP, DEV_TENANT_ID } from './standins/identities';
import { LOOPBACK } from './standins/https';
import { ensureLocalTls } from './tls';

interface Args {
  user: string;
  tenant: string;
  scope: string;
  authority: string;
}

class CliError extends Error {}

function readArgs(): Args {
  const { values } = parseArgs({
    options: {
      user: { type: 'string' },
      tenant: { type: 'string' },
      scope: { type: 'string' },
    },
  });
  if (!values.user)
    throw new CliError('usage: npm run token -- --user <name> [--tenant <tid>] [--scope <scope>]');
  return {
    user: values.user,
    tenant: values.tenant ?? process.env.ENTRA_TENANT_ID ?? DEV_TENANT_ID,
    scope: values.scope ?? `api://${API_APP.clientId}/${API_APP.scope}`,
    authority: (process.env.ENTRA_AUTHORITY_HOST ?? `https://${LOOPBACK}:${DEFAULT_PORTS.entra}`).replace(
      /\/+$/,
      '',
    ),
  };
}

/** The local CA, when the authority is on this machine: the process may not have NODE_EXTRA_CA_CERTS. */
async function trustFor(authority: URL): Promise<string | undefined> {
  const local = ['127.0.0.1', 'localhost', '[::1]'].includes(authority.hostname);
  return local ? (await ensureLocalTls()).ca : undefined;
}

function post(
  url: URL,
  body: string,
  ca: string | undefined,
): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        ca,
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          'content-length': Buffer.byteLength(body),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          try {
            const json = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
            resolve({ status: res.statusCode ?? 0, json });
          } catch {
            reject(new CliError(`${url.origin} answered ${res.statusCode} without JSON: is it Entra?`));
          }
        });
      },
    );
    req.on('error', (err: NodeJS.ErrnoException) => {
      const down = ['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH'].includes(err.code ?? '');
      reject(
        new CliError(
          down
            ? `The Entra stand-in is not running at ${url.origin}: start the stack with npm start first.`
            : `Cannot reach ${url.origin}: ${err.message}`,
        ),
      );
    });
    req.end(body);
  });
}

async function main(): Promise<void> {
  const args = readArgs();
  const endpoint = new URL(`${args.authority}/${encodeURIComponent(args.tenant)}/oauth2/v2.0/token`);
  const form = new URLSearchParams({
    grant_type: 'password',
    client_id: CLIENT_APP.clientId,
    username: args.user,
    // The stand-in takes any non-empty password for a dev user; no real account is involved.
    password: 'local-dev-password',
    scope: args.scope,
  });
  const { status, json } = await post(endpoint, form.toString(), await trustFor(endpoint));
  if (status !== 200 || typeof json.access_token !== 'string') {
    const description =
      typeof json.error_description === 'string' ? json.error_description.split('\r\n')[0] : '';
    throw new CliError(`Token request failed (${status} ${String(json.error)}): ${description}`);
  }
  process.stdout.write(`${json.access_token}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof CliError ? err.message : String(err)}\n`);
  process.exit(1);
});
