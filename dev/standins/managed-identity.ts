// A local stand-in for App Service's managed-identity endpoint: what `IDENTITY_ENDPOINT` and
// `IDENTITY_HEADER` advertise to a Function App with an identity. Like the real one it is plain
// HTTP on loopback, answers `GET ?api-version=2019-08-01&resource=…` (with `client_id`,
// `principal_id` or `mi_res_id` naming a user-assigned identity) only with the secret
// `X-IDENTITY-HEADER`, and hands out tokens Entra ID (here its stand-in) issued to the identity.
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { EntraStandIn } from './entra';
import { FaultQueue, LOOPBACK, sendJson } from './https';

export interface ManagedIdentity {
  /** Its client (application) id: what `client_id` and ENTRA_MANAGED_IDENTITY_CLIENT_ID name. */
  clientId: string;
  /** Its object (principal) id: `sub`/`oid` of its tokens, the federated credential's subject. */
  objectId: string;
  /** The resource id App Service knows it by (`mi_res_id`). */
  resourceId: string;
}

/** The user-assigned identity of the local stack's Function App. None of these exist in Azure. */
export const FUNCTION_USER_ASSIGNED_IDENTITY: ManagedIdentity = {
  clientId: '6d1f3a40-2b5c-4e7d-9f80-1a2b3c4d5e00',
  objectId: '8a2e4c60-3d7f-4b9a-8c1d-2e3f4a5b6c00',
  resourceId:
    '/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/local/providers/Microsoft.ManagedIdentity/userAssignedIdentities/graph-notify-identity',
};

/** The Function App's system-assigned identity (asked for when a request names none). */
export const FUNCTION_SYSTEM_ASSIGNED_IDENTITY: ManagedIdentity = {
  clientId: '4c7b9e20-1a3d-4f5e-8b6c-7d8e9f0a1b00',
  objectId: '2f4a6c80-5e7b-4d9c-9a1b-3c4d5e6f7a00',
  resourceId:
    '/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/local/providers/Microsoft.Web/sites/graph-notify',
};

/** What the stand-in saw of one token request (never the header's secret or a token). */
export interface IdentityRequestRecord {
  resource: string;
  /** Which identity the request named, and how (`system` when it named none). */
  by: 'client_id' | 'principal_id' | 'mi_res_id' | 'system';
  clientId?: string;
  status: number;
}

export interface ManagedIdentityStandIn {
  /** `IDENTITY_ENDPOINT` */
  endpoint: string;
  /** `IDENTITY_HEADER`: a random secret per start, as App Service rotates its own. */
  header: string;
  requests: IdentityRequestRecord[];
  /** The next N token requests (with the right header) fail with the given status. */
  faults: FaultQueue;
  close(): Promise<void>;
}

export interface ManagedIdentityStandInOptions {
  /** Issues the identities' tokens. */
  entra: EntraStandIn;
  /** The identities assigned to the app; default the system- and user-assigned ones above. */
  identities?: { systemAssigned?: ManagedIdentity; userAssigned?: ManagedIdentity[] };
  /** 0 picks a free port. */
  port?: number;
}

const API_VERSION = '2019-08-01';

export async function startManagedIdentityStandIn(
  options: ManagedIdentityStandInOptions,
): Promise<ManagedIdentityStandIn> {
  const header = randomBytes(24).toString('base64url');
  const requests: IdentityRequestRecord[] = [];
  const faults = new FaultQueue();
  const systemAssigned = options.identities?.systemAssigned ?? FUNCTION_SYSTEM_ASSIGNED_IDENTITY;
  const userAssigned = options.identities?.userAssigned ?? [FUNCTION_USER_ASSIGNED_IDENTITY];

  // App Service's error body: a status code and a message (not OAuth's shape).
  const refuse = (res: ServerResponse, status: number, message: string) =>
    sendJson(res, status, { statusCode: status, message, correlationId: randomUUID() });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://stand-in');
    if (req.method !== 'GET' || url.pathname !== '/msi/token') {
      refuse(res, 404, `No managed identity endpoint at ${req.method} ${url.pathname}`);
      return;
    }
    const q = url.searchParams;
    const resource = q.get('resource') ?? '';
    const record: IdentityRequestRecord = { resource, by: 'system', status: 200 };
    requests.push(record);
    const fail = (status: number, message: string) => {
      record.status = status;
      refuse(res, status, message);
    };
    if (req.headers['x-identity-header'] !== header) {
      fail(401, 'The X-IDENTITY-HEADER header is missing or wrong.');
      return;
    }
    const fault = faults.take();
    if (fault) {
      fail(fault.status, 'The managed identity endpoint is unavailable (a fault the test asked for).');
      return;
    }
    if (q.get('api-version') !== API_VERSION) {
      fail(400, `api-version ${q.get('api-version') ?? '(none)'} is not supported; use ${API_VERSION}.`);
      return;
    }
    if (!resource) {
      fail(400, 'The resource parameter is required.');
      return;
    }
    let identity: ManagedIdentity | undefined;
    const named = (['client_id', 'principal_id', 'mi_res_id'] as const).find((p) => q.has(p));
    if (named) {
      const value = (q.get(named) ?? '').toLowerCase();
      record.by = named;
      identity = userAssigned.find((i) =>
        named === 'client_id'
          ? i.clientId === value
          : named === 'principal_id'
            ? i.objectId === value
            : i.resourceId.toLowerCase() === value,
      );
      if (!identity) {
        fail(
          400,
          'No User Assigned or Delegated Managed Identity found for specified ClientId/ResourceId/PrincipalId.',
        );
        return;
      }
    } else {
      identity = systemAssigned;
    }
    record.clientId = identity.clientId;
    let issued: Awaited<ReturnType<EntraStandIn['issueManagedIdentityToken']>>;
    try {
      issued = await options.entra.issueManagedIdentityToken(identity, resource);
    } catch (err) {
      fail(400, (err as Error).message);
      return;
    }
    sendJson(res, 200, {
      access_token: issued.accessToken,
      // App Service sends expires_on as a string of epoch seconds.
      expires_on: String(issued.expiresOn),
      resource,
      token_type: 'Bearer',
      client_id: identity.clientId,
    });
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) refuse(res, 500, String(err));
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, LOOPBACK, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    endpoint: `http://${LOOPBACK}:${port}/msi/token`,
    header,
    requests,
    faults,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
