// A local stand-in for Microsoft Entra ID's v2.0 endpoints: OIDC discovery, JWKS and the token
// endpoint with the grants this app and its tooling use (on-behalf-of, refresh_token,
// client_credentials, and ROPC for the dev CLI). Shapes follow what Entra sends so that the real
// client libraries (msal-node, @azure/identity, jose) run unmodified against it.
import { createHash, randomBytes, randomUUID, X509Certificate, type KeyObject } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  createLocalJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  errors as joseErrors,
  jwtVerify,
  type JWTPayload,
} from 'jose';
import type { LocalTls } from '../tls';
import { delay, FaultQueue, Holds, readBody, sendJson, startHttps, type Fault } from './https';
import { SigningKeys } from './keys';
import {
  API_APP,
  CLIENT_APP,
  DEV_TENANT_ID,
  DEV_USERS,
  devUser,
  FUNCTION_IDENTITY,
  GRAPH_APP_ID,
  GRAPH_RESOURCE,
  KEY_VAULT_APP_ID,
  KEY_VAULT_RESOURCE,
  OTHER_TENANT_ID,
  type DevUser,
} from './identities';

export type UserState = 'ok' | 'interaction_required' | 'consent_required' | 'revoked';

/** What the stand-in saw of one token request. Never holds a secret, assertion or token. */
export interface TokenRequestRecord {
  at: string;
  tenant: string;
  grantType: string;
  clientId: string;
  clientAuth: 'secret' | 'certificate' | 'federated' | 'none';
  /** `client_assertion_type` as sent, when a client assertion came. */
  clientAssertionType?: string;
  /**
   * A federated credential's claims (never the token): what a federated identity credential of the
   * app registration was matched against.
   */
  federated?: { iss: string; sub: string; aud: string[] };
  /**
   * For a certificate: the assertion's header named the certificate by SHA-256 thumbprint
   * (`x5t#S256`) and carried its chain (`x5c`), which subject-name/issuer trust, and so a
   * certificate rollover without re-registering, needs.
   */
  certificateHeader?: { x5tS256: boolean; x5c: boolean };
  scope: string;
  userOid?: string;
  /** Whether a `claims` parameter (e.g. CAE's xms_cc cp1) came with the request. */
  claims: boolean;
  status: number;
  error?: string;
  errorCode?: number;
}

export interface IssueUserTokenOptions {
  /** A dev user's name or oid (an unknown one becomes a made-up user). */
  user: string;
  tenantId?: string;
  /** Overrides `aud` (default: the client id for v2, `api://{clientId}` for v1, as Entra does). */
  audience?: string;
  /** `scp` values; default `Notifications.Send`. An empty array leaves `scp` out. */
  scopes?: string[];
  expiresInSec?: number;
  version?: 1 | 2;
  /** Shifts `nbf` (and `iat`) relative to now: positive makes a not-yet-valid token. */
  notBeforeOffsetSec?: number;
  kid?: string;
  /** The client app the user signed in with (`azp` / `appid`). */
  clientId?: string;
  /** Added last, so it can override any claim (e.g. `iss`); `undefined` values remove a claim. */
  extraClaims?: Record<string, unknown>;
  /** Sign with other keys (e.g. `new SigningKeys()`) for a forged-signature token. */
  signingKeys?: SigningKeys;
}

export interface EntraStandIn {
  /** Authority host, e.g. `https://127.0.0.1:7081`: what `ENTRA_AUTHORITY_HOST` names. */
  url: string;
  port: number;
  keys: SigningKeys;
  /**
   * The next N token-endpoint requests fail with the given status (429 or 503), in Entra's error
   * JSON. `Retry-After` is sent only when the fault carries `retryAfter`. Mind msal's own
   * throttling: after a 429/5xx (or any error with Retry-After) msal-node refuses the *same*
   * request (same client, authority, scopes, claims) without a network call for Retry-After
   * seconds, or 60 s when absent, throwing a ServerError built from the cached error. So a test
   * that injects a fault must change the request (scopes, assertion/account) or use a fresh app
   * to reach the stand-in again.
   */
  faults: FaultQueue;
  /**
   * Token answers a test holds back: the grant is done (tokens issued or refused, records written)
   * and the answer waits until the test releases it, as a slow identity service would.
   */
  holds: Holds<{ grantType: string; userOid?: string }>;
  /** Token requests in arrival order. */
  requests: TokenRequestRecord[];
  /** Discovery-document and JWKS fetches (to see whether a client cached metadata). */
  hits: { openidConfiguration: number; jwks: number };
  /** Token requests, optionally only those of one grant type (e.g. `refresh_token`). */
  count(grantType?: string): number;
  clearRecords(): void;
  issuer(tenantId?: string): string;
  /** Issuer Entra puts in v1.0 access tokens (Graph's and Key Vault's are v1.0). */
  v1Issuer(tenantId?: string): string;
  tokenEndpoint(tenantId?: string): string;
  setUserState(user: string, state: UserState): void;
  issueUserToken(options: IssueUserTokenOptions): Promise<string>;
  /** Verifies a token this authority issued: signature, expiry (5 min skew), audience. */
  verifyIssued(token: string, audiences: string[]): Promise<JWTPayload>;
  /** Makes every refresh token (of one user, if given) older by `seconds`. */
  ageRefreshTokens(seconds: number, user?: string): void;
  /** Lets a confidential client authenticate with a certificate (`client_assertion`). */
  registerClientCertificate(clientId: string, certificatePem: string): void;
  /**
   * Adds a federated identity credential to an app registration: a token from `issuer` about
   * `subject` for one of `audiences` is then accepted as its `client_assertion`, as Entra does for
   * a managed identity's token (`az ad app federated-credential create`).
   */
  addFederatedCredential(clientId: string, credential: FederatedCredential): void;
  /** Removes every federated identity credential of an app registration. */
  clearFederatedCredentials(clientId: string): void;
  /**
   * A managed identity's access token for `resource`, as Entra issues it to the platform's identity
   * endpoint: for `api://AzureADTokenExchange` the token a federated credential trusts
   * (v2.0: `iss` this authority's issuer, `sub` and `oid` the identity's object id), for other
   * resources (Key Vault, Storage) a v1.0 app token. Throws for a resource it does not know.
   */
  issueManagedIdentityToken(
    identity: { clientId: string; objectId: string },
    resource: string,
  ): Promise<{ accessToken: string; expiresOn: number; resource: string }>;
  /**
   * The application permissions (app roles) granted to a client on a resource (its URI or app id):
   * what its client-credentials tokens for that resource carry in `roles`. By default this API's
   * registration holds `TeamsActivity.Send` on Microsoft Graph; an empty list takes it away.
   */
  setAppRoles(clientId: string, resourceId: string, roles: readonly string[]): void;
  close(): Promise<void>;
}

export interface FederatedCredential {
  issuer: string;
  subject: string;
  audiences: string[];
}

/** The resource a managed identity's token for a federated credential is for, and its app id. */
export const TOKEN_EXCHANGE_RESOURCE = 'api://AzureADTokenExchange';
export const TOKEN_EXCHANGE_APP_ID = 'fb60f99c-7a34-4190-8149-302f77469936';
export const STORAGE_RESOURCE = 'https://storage.azure.com';

export interface EntraStandInOptions {
  tls: LocalTls;
  /** 0 picks a free port. */
  port?: number;
  /** Added before every discovery, JWKS and token answer. */
  latencyMs?: number;
  /** Access-token format of this API's registration (`accessTokenAcceptedVersion`); default 2. */
  apiTokenVersion?: 1 | 2;
  /** Refresh-token inactivity lifetime; Entra's default is 90 days. */
  refreshTokenLifetimeSec?: number;
  accessTokenLifetimeSec?: number;
}

/** The Conditional Access policy a step-up (`interaction_required`) names in its claims challenge. */
export const MFA_POLICY_ID = 'c0a1b2c3-0000-4000-8000-00000000cab1';

const DAY = 24 * 60 * 60;
const OIDC_SCOPES = new Set(['openid', 'profile', 'email', 'offline_access']);
const GRANT = {
  obo: 'urn:ietf:params:oauth:grant-type:jwt-bearer',
  refresh: 'refresh_token',
  client: 'client_credentials',
  password: 'password',
} as const;
const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

interface ClientApp {
  clientId: string;
  displayName: string;
  secret?: string;
  certificates: Array<{ x5t: string; x5tS256: string; publicKey: KeyObject }>;
  federatedCredentials: FederatedCredential[];
  /** Public clients (the CLI) have no credential and may not use OBO or client credentials. */
  confidential: boolean;
}

interface Resource {
  /** How scopes name it and what `aud` its tokens carry. */
  id: string;
  aliases: string[];
  /** What `.default` expands to: the permissions this API's registration was granted. */
  defaultPermissions: string[];
  tokenVersion: 1 | 2;
}

interface RefreshTokenRecord {
  oid: string;
  tid: string;
  clientId: string;
  issuedAt: number;
  seq: number;
}

/** An Entra error answer: OAuth `error`, the AADSTS number and its message. */
class EntraError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    readonly code: number,
    message: string,
    readonly extra: { suberror?: string; claims?: string } = {},
  ) {
    super(message);
  }
}

const invalidRequest = (code: number, msg: string) => new EntraError(400, 'invalid_request', code, msg);
const invalidGrant = (code: number, msg: string) => new EntraError(400, 'invalid_grant', code, msg);
const missingParameter = (name: string) =>
  invalidRequest(900144, `The request body must contain the following parameter: '${name}'.`);

function nowSec(): number {
  return Math.floor(Date.now() / 1000);
}

function b64url(bytes: number): string {
  return randomBytes(bytes).toString('base64url');
}

/** Entra's timestamp format: `2016-01-09 02:02:12Z`. */
function entraTimestamp(date = new Date()): string {
  return date
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, 'Z');
}

/** Entra's `sub` is pairwise: stable per user and app, different across apps. */
function pairwiseSub(oid: string, clientId: string): string {
  return createHash('sha256').update(`${oid}|${clientId}`).digest('base64url').slice(0, 43);
}

/** A stable GUID-shaped id, for the service principals behind the client apps. */
function derivedGuid(seed: string): string {
  const h = createHash('sha256').update(seed).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

function userFor(nameOrOid: string, tenantId?: string): DevUser {
  const user = devUser(nameOrOid, tenantId ?? DEV_TENANT_ID);
  return tenantId && user.tid !== tenantId ? { ...user, tid: tenantId } : user;
}

function findUserByLogin(login: string, tenantId: string): DevUser | undefined {
  const known = DEV_USERS.find((u) => u.upn.toLowerCase() === login.toLowerCase() || u.name === login);
  if (known) return known.tid === tenantId ? known : undefined;
  const name = login.includes('@') ? login.slice(0, login.indexOf('@')) : login;
  return devUser(name, tenantId);
}

function splitScopes(scope: string): { oidc: Set<string>; resourceScopes: string[] } {
  const all = scope.split(/\s+/).filter(Boolean);
  return {
    oidc: new Set(all.filter((s) => OIDC_SCOPES.has(s))),
    resourceScopes: all.filter((s) => !OIDC_SCOPES.has(s)),
  };
}

/** Entra's `client_info`: the user's home account, which for a B2B guest is not the guest object. */
function clientInfo(user: DevUser): string {
  const home = user.home ?? { oid: user.oid, tid: user.tid };
  return Buffer.from(JSON.stringify({ uid: home.oid, utid: home.tid })).toString('base64url');
}

/** Claims only a guest's tokens carry: `idp`, the issuer of the home tenant that signed them in. */
function guestClaims(user: DevUser): Record<string, unknown> {
  return user.home ? { idp: `https://sts.windows.net/${user.home.tid}/` } : {};
}

function mfaClaimsChallenge(): string {
  return JSON.stringify({ access_token: { capolids: { essential: true, values: [MFA_POLICY_ID] } } });
}

export async function startEntraStandIn(options: EntraStandInOptions): Promise<EntraStandIn> {
  const keys = new SigningKeys();
  const faults = new FaultQueue();
  const holds = new Holds<{ grantType: string; userOid?: string }>();
  const requests: TokenRequestRecord[] = [];
  const hits = { openidConfiguration: 0, jwks: 0 };
  const tenants = new Set([DEV_TENANT_ID, OTHER_TENANT_ID]);
  const userStates = new Map<string, UserState>();
  /** Per user: refresh tokens with a sequence number at or below this were revoked. */
  const revokedUpTo = new Map<string, number>();
  const refreshTokens = new Map<string, RefreshTokenRecord>();
  let rtSeq = 0;
  const latencyMs = options.latencyMs ?? 0;
  const apiTokenVersion = options.apiTokenVersion ?? 2;
  const refreshLifetime = options.refreshTokenLifetimeSec ?? 90 * DAY;
  const accessLifetime = options.accessTokenLifetimeSec ?? 3599;

  const clients = new Map<string, ClientApp>([
    [
      API_APP.clientId,
      {
        clientId: API_APP.clientId,
        displayName: 'graph-notify',
        secret: API_APP.clientSecret,
        certificates: [],
        federatedCredentials: [],
        confidential: true,
      },
    ],
    [
      FUNCTION_IDENTITY.clientId,
      {
        clientId: FUNCTION_IDENTITY.clientId,
        displayName: 'graph-notify function identity',
        secret: FUNCTION_IDENTITY.clientSecret,
        certificates: [],
        federatedCredentials: [],
        confidential: true,
      },
    ],
    [
      CLIENT_APP.clientId,
      {
        clientId: CLIENT_APP.clientId,
        displayName: 'graph-notify dev client',
        certificates: [],
        federatedCredentials: [],
        confidential: false,
      },
    ],
  ]);

  const resources: Resource[] = [
    {
      id: GRAPH_RESOURCE,
      aliases: [GRAPH_RESOURCE, GRAPH_APP_ID],
      // The delegated permissions this API's registration holds on Graph (both channels').
      defaultPermissions: ['Notifications.ReadWrite.CreatedByApp', 'TeamsActivity.Send'],
      // Graph accepts v1.0 tokens, so Entra issues those for it whatever endpoint is used.
      tokenVersion: 1,
    },
    {
      id: KEY_VAULT_RESOURCE,
      aliases: [KEY_VAULT_RESOURCE, KEY_VAULT_APP_ID],
      defaultPermissions: ['user_impersonation'],
      tokenVersion: 1,
    },
    {
      id: STORAGE_RESOURCE,
      aliases: [STORAGE_RESOURCE],
      defaultPermissions: ['user_impersonation'],
      tokenVersion: 1,
    },
    {
      id: `api://${API_APP.clientId}`,
      aliases: [`api://${API_APP.clientId}`, API_APP.clientId],
      defaultPermissions: [API_APP.scope],
      tokenVersion: apiTokenVersion,
    },
  ];

  /** Per client, per resource id: the application permissions an admin granted (`roles`). */
  const appRoles = new Map<string, Map<string, string[]>>([
    [API_APP.clientId, new Map([[GRAPH_RESOURCE, ['TeamsActivity.Send']]])],
  ]);

  function resourceNamed(name: string): Resource {
    const resource = resources.find((r) => r.aliases.includes(name.replace(/\/$/, '')));
    if (!resource) throw new Error(`no resource ${name}`);
    return resource;
  }

  let url = '';
  const issuer = (tid: string = DEV_TENANT_ID) => `${url}/${tid}/v2.0`;
  const v1Issuer = (tid: string = DEV_TENANT_ID) => `https://sts.windows.net/${tid}/`;
  const tokenEndpoint = (tid: string = DEV_TENANT_ID) => `${url}/${tid}/oauth2/v2.0/token`;

  function stateOf(oid: string): UserState {
    return userStates.get(oid) ?? 'ok';
  }

  function resourceFor(scopes: string[]): { resource: Resource; permissions: string[] } {
    if (scopes.length === 0) {
      throw new EntraError(
        400,
        'invalid_scope',
        70011,
        "The provided value for the input parameter 'scope' isn't valid. A resource scope is required.",
      );
    }
    const parsed = scopes.map((s) => {
      const slash = s.lastIndexOf('/');
      // A bare permission (no resource) means Microsoft Graph, as on Entra's v2.0 endpoint.
      return slash < 0
        ? { res: GRAPH_RESOURCE, perm: s }
        : { res: s.slice(0, slash), perm: s.slice(slash + 1) };
    });
    const names = new Set(parsed.map((p) => p.res.replace(/\/$/, '')));
    if (names.size > 1) {
      throw new EntraError(
        400,
        'invalid_scope',
        700022,
        "The provided value for the input parameter scope isn't valid because it contains more than one resource.",
      );
    }
    const name = [...names][0] ?? '';
    const resource = resources.find((r) => r.aliases.includes(name));
    if (!resource) {
      throw new EntraError(
        400,
        'invalid_resource',
        500011,
        `The resource principal named ${name} was not found in the tenant.`,
      );
    }
    const perms = parsed.flatMap((p) => (p.perm === '.default' ? resource.defaultPermissions : [p.perm]));
    return { resource, permissions: [...new Set(perms)] };
  }

  async function signUserAccessToken(args: {
    user: DevUser;
    resource: Resource;
    audience?: string;
    permissions: string[];
    clientId: string;
    clientAuthLevel: '0' | '1' | '2';
    lifetimeSec: number;
    notBeforeOffsetSec?: number;
    version?: 1 | 2;
    kid?: string;
    extraClaims?: Record<string, unknown>;
    signingKeys?: SigningKeys;
    cp1?: boolean;
  }): Promise<string> {
    const { user, resource } = args;
    const version = args.version ?? resource.tokenVersion;
    const iat = nowSec() + (args.notBeforeOffsetSec ?? 0);
    const aud = args.audience ?? (version === 2 ? (resource.aliases[1] ?? resource.id) : resource.id);
    const common: Record<string, unknown> = {
      aud,
      iat,
      nbf: iat,
      exp: nowSec() + args.lifetimeSec,
      aio: b64url(32),
      name: user.displayName,
      oid: user.oid,
      rh: `0.${b64url(24)}.`,
      sub: pairwiseSub(user.oid, args.clientId),
      tid: user.tid,
      uti: b64url(16),
      ...guestClaims(user),
    };
    if (args.permissions.length > 0) common.scp = args.permissions.join(' ');
    if (args.cp1) common.xms_cc = ['cp1'];
    const claims: Record<string, unknown> =
      version === 2
        ? {
            ...common,
            iss: issuer(user.tid),
            azp: args.clientId,
            azpacr: args.clientAuthLevel,
            preferred_username: user.upn,
            ver: '2.0',
          }
        : {
            ...common,
            iss: v1Issuer(user.tid),
            acr: '1',
            amr: ['pwd'],
            app_displayname: clients.get(args.clientId)?.displayName ?? args.clientId,
            appid: args.clientId,
            appidacr: args.clientAuthLevel,
            idtyp: 'user',
            unique_name: user.upn,
            upn: user.upn,
            ver: '1.0',
          };
    for (const [k, v] of Object.entries(args.extraClaims ?? {})) {
      if (v === undefined) delete claims[k];
      else claims[k] = v;
    }
    return (args.signingKeys ?? keys).sign(claims, { kid: args.kid });
  }

  async function signIdToken(user: DevUser, clientId: string): Promise<string> {
    const iat = nowSec();
    return keys.sign({
      aud: clientId,
      iss: issuer(user.tid),
      iat,
      nbf: iat,
      exp: iat + 3600,
      name: user.displayName,
      oid: user.oid,
      preferred_username: user.upn,
      rh: `0.${b64url(24)}.`,
      sub: pairwiseSub(user.oid, clientId),
      tid: user.tid,
      uti: b64url(16),
      ver: '2.0',
      ...guestClaims(user),
    });
  }

  function newRefreshToken(oid: string, tid: string, clientId: string): string {
    // Opaque to clients, as Entra's are; only this map gives it meaning.
    const token = `1.AQ${b64url(96)}`;
    refreshTokens.set(token, { oid, tid, clientId, issuedAt: nowSec(), seq: ++rtSeq });
    return token;
  }

  /** Builds the success body Entra returns for a delegated (user) grant. */
  async function userTokenResponse(args: {
    user: DevUser;
    clientId: string;
    clientAuthLevel: '0' | '1' | '2';
    scope: string;
    params: URLSearchParams;
  }): Promise<Record<string, unknown>> {
    const { oidc, resourceScopes } = splitScopes(args.scope);
    const { resource, permissions } = resourceFor(resourceScopes);
    const accessToken = await signUserAccessToken({
      user: args.user,
      resource,
      permissions,
      clientId: args.clientId,
      clientAuthLevel: args.clientAuthLevel,
      lifetimeSec: accessLifetime,
      cp1: requestsCp1(args.params.get('claims')),
    });
    // The scope echo is resource-qualified (and leaves out the OIDC scopes), as in Entra's OBO
    // documentation's example; msal-node caches by it.
    const body: Record<string, unknown> = {
      token_type: 'Bearer',
      scope: permissions.map((p) => `${resource.id}/${p}`).join(' '),
      expires_in: accessLifetime,
      ext_expires_in: accessLifetime,
      access_token: accessToken,
    };
    if (oidc.has('offline_access')) {
      body.refresh_token = newRefreshToken(args.user.oid, args.user.tid, args.clientId);
    }
    if (oidc.has('openid')) body.id_token = await signIdToken(args.user, args.clientId);
    if (args.params.get('client_info') === '1') body.client_info = clientInfo(args.user);
    return body;
  }

  function requestsCp1(claims: string | null): boolean {
    if (!claims) return false;
    try {
      const parsed = JSON.parse(claims) as { access_token?: { xms_cc?: { values?: unknown } } };
      const values = parsed.access_token?.xms_cc?.values;
      return Array.isArray(values) && values.includes('cp1');
    } catch {
      throw invalidRequest(90100, "The parameter 'claims' is empty or not valid.");
    }
  }

  /**
   * Refuses a delegated grant the way Entra does for a user who must step up (any resource) or
   * has not consented to this API's downstream permissions (resources other than this API).
   */
  function checkUserState(user: DevUser, resource: string): void {
    const state = stateOf(user.oid);
    if (state === 'interaction_required') {
      throw new EntraError(
        400,
        'interaction_required',
        50076,
        'Due to a configuration change made by your administrator, or because you moved to a new location, ' +
          `you must use multi-factor authentication to access '${resource}'.`,
        { suberror: 'basic_action', claims: mfaClaimsChallenge() },
      );
    }
    if (state === 'consent_required' && resource !== `api://${API_APP.clientId}`) {
      throw new EntraError(
        400,
        'invalid_grant',
        65001,
        `The user or administrator has not consented to use the application with ID '${API_APP.clientId}' ` +
          "named 'graph-notify'. Send an interactive authorization request for this user and resource.",
        { suberror: 'consent_required' },
      );
    }
  }

  /** Client authentication: secret (post or basic) or a certificate-signed client assertion. */
  async function authenticateClient(
    params: URLSearchParams,
    req: IncomingMessage,
    tid: string,
    record: TokenRequestRecord,
  ): Promise<{ client: ClientApp; auth: TokenRequestRecord['clientAuth'] }> {
    let clientId = params.get('client_id') ?? '';
    let secret = params.get('client_secret');
    const basic = /^Basic (.+)$/i.exec(req.headers.authorization ?? '');
    if (basic?.[1]) {
      const decoded = Buffer.from(basic[1], 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      clientId = decodeURIComponent(decoded.slice(0, colon));
      secret = decodeURIComponent(decoded.slice(colon + 1));
    }
    if (!clientId) throw missingParameter('client_id');
    const client = clients.get(clientId);
    if (!client) {
      throw new EntraError(
        400,
        'unauthorized_client',
        700016,
        `Application with identifier '${clientId}' was not found in the directory '${tid}'. This can happen if ` +
          'the application has not been installed by the administrator of the tenant or consented to by any user ' +
          'in the tenant. You may have sent your authentication request to the wrong tenant.',
      );
    }
    const assertion = params.get('client_assertion');
    if (!client.confidential) {
      if (secret || assertion) {
        throw new EntraError(
          401,
          'invalid_client',
          700025,
          "Client is public so neither 'client_assertion' nor 'client_secret' should be presented.",
        );
      }
      return { client, auth: 'none' };
    }
    if (secret) {
      if (secret !== client.secret) {
        throw new EntraError(
          401,
          'invalid_client',
          7000215,
          `Invalid client secret provided. Ensure the secret being sent in the request is the client secret ` +
            `value, not the client secret ID, for a secret added to app '${clientId}'.`,
        );
      }
      return { client, auth: 'secret' };
    }
    if (assertion) {
      const type = params.get('client_assertion_type');
      if (type !== CLIENT_ASSERTION_TYPE) {
        throw invalidRequest(90100, "The parameter 'client_assertion_type' is empty or not valid.");
      }
      record.clientAssertionType = type;
      let claims: JWTPayload;
      try {
        claims = decodeJwt(assertion);
      } catch {
        throw new EntraError(401, 'invalid_client', 50027, 'JWT token is invalid or malformed.');
      }
      // An assertion the app signed itself names the app as its issuer; any other issuer is a
      // federated credential's (here: the managed identity's token).
      if (claims.iss === client.clientId) {
        const header = decodeProtectedHeader(assertion);
        record.certificateHeader = { x5tS256: Boolean(header['x5t#S256']), x5c: Array.isArray(header.x5c) };
        await verifyClientAssertion(client, assertion, tid);
        return { client, auth: 'certificate' };
      }
      record.federated = await verifyFederatedAssertion(client, assertion);
      return { client, auth: 'federated' };
    }
    throw new EntraError(
      401,
      'invalid_client',
      7000218,
      "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
    );
  }

  async function verifyClientAssertion(client: ClientApp, assertion: string, tid: string): Promise<void> {
    const fail = (code: number, msg: string) => new EntraError(401, 'invalid_client', code, msg);
    let header: { 'x5t#S256'?: unknown; x5t?: unknown };
    try {
      header = decodeProtectedHeader(assertion);
    } catch {
      throw fail(50027, 'JWT token is invalid or malformed.');
    }
    const cert = client.certificates.find((c) => c.x5tS256 === header['x5t#S256'] || c.x5t === header.x5t);
    if (!cert) {
      throw fail(700027, `Client assertion contains an invalid signature. [Reason - The key was not found.]`);
    }
    try {
      // msal-node signs with aud = the token endpoint and iss = sub = client id.
      await jwtVerify(assertion, cert.publicKey, {
        algorithms: ['RS256', 'PS256'],
        audience: [tokenEndpoint(tid), issuer(tid)],
        issuer: client.clientId,
        subject: client.clientId,
        clockTolerance: 300,
      });
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired)
        throw fail(700024, 'Client assertion is not within its valid time range.');
      throw fail(
        700027,
        `Client assertion failed signature validation. [Reason - ${(err as Error).message}]`,
      );
    }
  }

  /**
   * Checks a federated credential's token as Entra does: a valid token of a trusted issuer (here
   * only this authority, which issues the managed identities' tokens), then one of the app's
   * federated identity credentials matching its issuer, audience and subject exactly (Entra
   * matches case-sensitively). The AADSTS codes and wording are Entra's.
   */
  async function verifyFederatedAssertion(
    client: ClientApp,
    assertion: string,
  ): Promise<NonNullable<TokenRequestRecord['federated']>> {
    const fail = (code: number, msg: string) => new EntraError(401, 'invalid_client', code, msg);
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(assertion, createLocalJWKSet(keys.jwks()), {
        algorithms: ['RS256'],
        clockTolerance: 300,
      }));
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) {
        throw fail(700024, 'Client assertion is not within its valid time range.');
      }
      throw fail(
        700027,
        `Client assertion failed signature validation. [Reason - ${(err as Error).message}]`,
      );
    }
    const iss = payload.iss ?? '';
    const sub = payload.sub ?? '';
    const aud = Array.isArray(payload.aud) ? payload.aud : payload.aud ? [payload.aud] : [];
    const seen = { iss, sub, aud };
    // The token exchange audience may be named by its URI or by its app id.
    const audienceNames = (a: string) =>
      a === TOKEN_EXCHANGE_RESOURCE || a === TOKEN_EXCHANGE_APP_ID
        ? [TOKEN_EXCHANGE_RESOURCE, TOKEN_EXCHANGE_APP_ID]
        : [a];
    const audienceMatches = (fic: FederatedCredential) =>
      fic.audiences.some((want) => aud.some((got) => audienceNames(want).includes(got)));
    const records = client.federatedCredentials;
    if (records.length === 0) {
      throw new EntraError(
        400,
        'invalid_request',
        70021,
        `No matching federated identity record found for presented assertion. Assertion Issuer: '${iss}'. ` +
          `Assertion Subject: '${sub}'. Assertion Audience: '${aud.join(',')}'. ` +
          'https://learn.microsoft.com/entra/workload-id/workload-identity-federation',
      );
    }
    const byIssuer = records.filter((fic) => fic.issuer === iss);
    if (byIssuer.length === 0) {
      throw fail(
        700211,
        `No matching federated identity record found for presented assertion issuer '${iss}'. Please check your ` +
          'federated identity credential Subject, Audience and Issuer against the presented assertion. ' +
          'https://learn.microsoft.com/entra/workload-id/workload-identity-federation',
      );
    }
    const byAudience = byIssuer.filter(audienceMatches);
    if (byAudience.length === 0) {
      throw fail(
        700212,
        `No matching federated identity record found for presented assertion audience '${aud.join(',')}'. Please ` +
          'check your federated identity credential Subject, Audience and Issuer against the presented ' +
          'assertion. https://learn.microsoft.com/entra/workload-id/workload-identity-federation',
      );
    }
    if (!byAudience.some((fic) => fic.subject === sub)) {
      throw fail(
        700213,
        `No matching federated identity record found for presented assertion subject '${sub}'. Please check your ` +
          'federated identity credential Subject, Audience and Issuer against the presented assertion. ' +
          'https://learn.microsoft.com/entra/workload-id/workload-identity-federation',
      );
    }
    return seen;
  }

  /** Checks the OBO `assertion`: one of our user access tokens, for the calling app, in this tenant. */
  async function verifyUserAssertion(assertion: string, client: ClientApp, tid: string): Promise<DevUser> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(assertion, createLocalJWKSet(keys.jwks()), { algorithms: ['RS256'] }));
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) {
        const exp = (decodeJwt(assertion).exp ?? 0) * 1000;
        throw invalidGrant(
          500133,
          'Assertion is not within its valid time range. Ensure that the access token is not expired before ' +
            `using it for user assertion, or request a new token. Current time: ${new Date().toISOString()}, ` +
            `expiry time of assertion ${new Date(exp).toISOString()}.`,
        );
      }
      if (err instanceof joseErrors.JWTClaimValidationFailed && err.claim === 'nbf') {
        throw invalidGrant(500133, 'Assertion is not within its valid time range.');
      }
      throw invalidGrant(
        50013,
        `Assertion failed signature validation. [Reason - ${(err as Error).message}]`,
      );
    }
    const audiences = Array.isArray(payload.aud) ? payload.aud : [payload.aud ?? ''];
    const expected = [client.clientId, `api://${client.clientId}`];
    if (!audiences.some((a) => expected.includes(a))) {
      throw invalidGrant(
        500131,
        `Assertion audience does not match the Client app presenting the assertion. The audience in the ` +
          `assertion was '${audiences.join(',')}' and the expected audience is '${expected[1]}' or one of the ` +
          'Application Ids of the application.',
      );
    }
    const tokenTid = payload.tid;
    const oid = payload.oid;
    const iss = payload.iss ?? '';
    if (typeof tokenTid !== 'string' || typeof oid !== 'string' || !iss.includes(tokenTid)) {
      throw invalidGrant(
        50013,
        'Assertion is invalid: it carries no user, or its issuer does not match its tenant.',
      );
    }
    if (tokenTid !== tid) {
      throw invalidGrant(50013, `Assertion was issued by tenant '${tokenTid}', not by '${tid}'.`);
    }
    const base = userFor(oid, tid);
    return {
      ...base,
      displayName: typeof payload.name === 'string' ? payload.name : base.displayName,
      upn: typeof payload.upn === 'string' ? payload.upn : (payload.preferred_username as string) || base.upn,
    };
  }

  async function oboGrant(
    params: URLSearchParams,
    client: ClientApp,
    tid: string,
    record: TokenRequestRecord,
  ) {
    if (params.get('requested_token_use') !== 'on_behalf_of') throw missingParameter('requested_token_use');
    const assertion = params.get('assertion');
    if (!assertion) throw missingParameter('assertion');
    if (!client.confidential) {
      throw new EntraError(
        400,
        'unauthorized_client',
        7000114,
        `Application '${client.clientId}' isn't allowed to make on-behalf-of calls.`,
      );
    }
    const user = await verifyUserAssertion(assertion, client, tid);
    record.userOid = user.oid;
    const scope = params.get('scope') ?? '';
    const { resource } = resourceFor(splitScopes(scope).resourceScopes);
    // Revocation ends refresh tokens and sessions, not access tokens already issued: an OBO with a
    // still-valid assertion goes through, as it does on Entra (absent continuous access evaluation).
    checkUserState(user, resource.id);
    return userTokenResponse({
      user,
      clientId: client.clientId,
      clientAuthLevel: record.clientAuth === 'secret' ? '1' : '2',
      scope,
      params,
    });
  }

  async function refreshGrant(
    params: URLSearchParams,
    client: ClientApp,
    tid: string,
    record: TokenRequestRecord,
  ) {
    const token = params.get('refresh_token');
    if (!token) throw missingParameter('refresh_token');
    const rt = refreshTokens.get(token);
    if (!rt) throw invalidGrant(9002313, 'Invalid request. Request is malformed or invalid.');
    record.userOid = rt.oid;
    if (rt.clientId !== client.clientId || rt.tid !== tid) {
      throw invalidGrant(
        70000,
        "The provided value for the 'refresh_token' is not valid: it was issued to another client or tenant.",
      );
    }
    if (rt.seq <= (revokedUpTo.get(rt.oid) ?? 0)) {
      throw invalidGrant(
        50173,
        'The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might ' +
          `have changed or reset their password. The grant was issued on '${new Date(rt.issuedAt * 1000).toISOString()}'.`,
      );
    }
    const inactive = nowSec() - rt.issuedAt;
    if (inactive > refreshLifetime) {
      throw invalidGrant(
        700082,
        `The refresh token has expired due to inactivity. The token was issued on ` +
          `${new Date(rt.issuedAt * 1000).toISOString()} and was inactive for ${Math.floor(inactive / DAY)}.00:00:00.`,
      );
    }
    const user = userFor(rt.oid, rt.tid);
    const scope = params.get('scope') ?? '';
    const { resource } = resourceFor(splitScopes(scope).resourceScopes);
    checkUserState(user, resource.id);
    // A new refresh token comes back; the redeemed one stays valid until it expires, as on Entra.
    const level = !client.confidential ? '0' : record.clientAuth === 'secret' ? '1' : '2';
    return userTokenResponse({ user, clientId: client.clientId, clientAuthLevel: level, scope, params });
  }

  async function clientCredentialsGrant(params: URLSearchParams, client: ClientApp, tid: string) {
    if (!client.confidential) {
      throw new EntraError(
        401,
        'invalid_client',
        7000218,
        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
      );
    }
    const scopes = (params.get('scope') ?? '').split(/\s+/).filter(Boolean);
    if (scopes.length !== 1 || !scopes[0]?.endsWith('/.default')) {
      throw new EntraError(
        400,
        'invalid_scope',
        1002012,
        `The provided value for scope ${scopes.join(' ')} is not valid. Client credential flows must have a scope ` +
          'value with /.default suffixed to the resource identifier (application ID URI).',
      );
    }
    const { resource } = resourceFor(scopes);
    const iat = nowSec();
    const spOid = derivedGuid(`sp|${client.clientId}|${tid}`);
    const lifetime = 86399;
    const claims: Record<string, unknown> = {
      aud: resource.id,
      iss: v1Issuer(tid),
      iat,
      nbf: iat,
      exp: iat + lifetime,
      aio: b64url(32),
      appid: client.clientId,
      appidacr: '1',
      idp: v1Issuer(tid),
      idtyp: 'app',
      oid: spOid,
      rh: `0.${b64url(24)}.`,
      sub: spOid,
      tid,
      uti: b64url(16),
      ver: '1.0',
    };
    // Entra leaves `roles` out when the app holds none on the resource.
    const roles = appRoles.get(client.clientId)?.get(resource.id) ?? [];
    if (roles.length > 0) claims.roles = [...roles];
    if (requestsCp1(params.get('claims'))) claims.xms_cc = ['cp1'];
    return {
      token_type: 'Bearer',
      expires_in: lifetime,
      ext_expires_in: lifetime,
      access_token: await keys.sign(claims),
    };
  }

  /** ROPC, for the dev CLI only: any non-empty password signs a dev user in. */
  async function passwordGrant(
    params: URLSearchParams,
    client: ClientApp,
    tid: string,
    record: TokenRequestRecord,
  ) {
    const username = params.get('username');
    const password = params.get('password');
    if (!username) throw missingParameter('username');
    if (!password) throw missingParameter('password');
    const user = findUserByLogin(username, tid);
    if (!user) {
      throw invalidGrant(
        50034,
        `The user account ${username} does not exist in the ${tid} directory. To sign into this application, ` +
          'the account must be added to the directory.',
      );
    }
    record.userOid = user.oid;
    checkUserState(user, `api://${API_APP.clientId}`);
    const level = client.confidential ? '1' : '0';
    return userTokenResponse({
      user,
      clientId: client.clientId,
      clientAuthLevel: level,
      scope: params.get('scope') ?? '',
      params,
    });
  }

  function sendEntraError(
    res: ServerResponse,
    err: EntraError,
    correlationId: string,
    headers: Record<string, string> = {},
  ) {
    const traceId = randomUUID();
    const ts = entraTimestamp();
    const body: Record<string, unknown> = {
      error: err.error,
      error_description:
        `AADSTS${err.code}: ${err.message}\r\nTrace ID: ${traceId}\r\nCorrelation ID: ${correlationId}` +
        `\r\nTimestamp: ${ts}`,
      error_codes: [err.code],
      timestamp: ts,
      trace_id: traceId,
      correlation_id: correlationId,
      error_uri: `${url}/error?code=${err.code}`,
    };
    if (err.extra.suberror) body.suberror = err.extra.suberror;
    if (err.extra.claims) body.claims = err.extra.claims;
    sendJson(res, err.status, body, { 'cache-control': 'no-store, no-cache', ...headers });
  }

  function faultError(fault: Fault): EntraError {
    // ESTS answers 429 when it throttles a client and 503 when it is too busy, each with Retry-After
    // (per the MSAL team, AzureAD/microsoft-authentication-library-for-dotnet#3907).
    return fault.status === 429
      ? new EntraError(
          429,
          'temporarily_unavailable',
          90055,
          'There are too many incoming requests. Try again later.',
        )
      : new EntraError(
          fault.status,
          'temporarily_unavailable',
          90033,
          'The service is temporarily unavailable. Try again later.',
        );
  }

  async function handleToken(req: IncomingMessage, res: ServerResponse, tid: string, query: URLSearchParams) {
    const params = new URLSearchParams((await readBody(req)).toString('utf8'));
    const correlationId =
      params.get('client-request-id') ??
      query.get('client-request-id') ??
      (req.headers['client-request-id'] as string | undefined) ??
      randomUUID();
    const record: TokenRequestRecord = {
      at: new Date().toISOString(),
      tenant: tid,
      grantType: params.get('grant_type') ?? '',
      clientId: params.get('client_id') ?? '',
      clientAuth: 'none',
      scope: params.get('scope') ?? '',
      claims: params.has('claims'),
      status: 200,
    };
    requests.push(record);
    const fault = faults.take();
    if (fault) {
      record.status = fault.status;
      const headers: Record<string, string> =
        fault.retryAfter !== undefined ? { 'retry-after': String(fault.retryAfter) } : {};
      if (fault.body !== undefined) {
        sendJson(res, fault.status, fault.body, headers);
        return;
      }
      const err = faultError(fault);
      record.error = err.error;
      record.errorCode = err.code;
      sendEntraError(res, err, correlationId, headers);
      return;
    }
    try {
      if (!tenants.has(tid))
        throw new EntraError(400, 'invalid_request', 90002, `Tenant '${tid}' not found.`);
      if (!record.grantType) throw missingParameter('grant_type');
      if (!(Object.values(GRANT) as string[]).includes(record.grantType)) {
        throw new EntraError(
          400,
          'unsupported_grant_type',
          70003,
          `The app requested an unsupported grant type '${record.grantType}'.`,
        );
      }
      const { client, auth } = await authenticateClient(params, req, tid, record);
      record.clientId = client.clientId;
      record.clientAuth = auth;
      const body = await runGrant(record.grantType, params, client, tid, record);
      await holdIfAsked(record);
      sendJson(res, 200, body, { 'cache-control': 'no-store, no-cache', pragma: 'no-cache' });
    } catch (err) {
      if (!(err instanceof EntraError)) throw err;
      record.status = err.status;
      record.error = err.error;
      record.errorCode = err.code;
      await holdIfAsked(record);
      sendEntraError(res, err, correlationId);
    }
  }

  /** Holds the answer (success or error alike) while a test's hold matches the request. */
  async function holdIfAsked(record: TokenRequestRecord): Promise<void> {
    await holds.pass({ grantType: record.grantType, ...(record.userOid ? { userOid: record.userOid } : {}) });
  }

  async function runGrant(
    grantType: string,
    params: URLSearchParams,
    client: ClientApp,
    tid: string,
    record: TokenRequestRecord,
  ): Promise<Record<string, unknown>> {
    switch (grantType) {
      case GRANT.obo:
        return oboGrant(params, client, tid, record);
      case GRANT.refresh:
        return refreshGrant(params, client, tid, record);
      case GRANT.client:
        return clientCredentialsGrant(params, client, tid);
      case GRANT.password:
        return passwordGrant(params, client, tid, record);
      default:
        throw new EntraError(
          400,
          'unsupported_grant_type',
          70003,
          `The app requested an unsupported grant type '${grantType}'.`,
        );
    }
  }

  function openidConfiguration(tid: string): Record<string, unknown> {
    const base = `${url}/${tid}`;
    return {
      token_endpoint: `${base}/oauth2/v2.0/token`,
      token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
      jwks_uri: `${base}/discovery/v2.0/keys`,
      response_modes_supported: ['query', 'fragment', 'form_post'],
      subject_types_supported: ['pairwise'],
      id_token_signing_alg_values_supported: ['RS256'],
      response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
      scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
      // msal-common checks that the issuer has the authority's scheme, host and port.
      issuer: `${base}/v2.0`,
      request_uri_parameter_supported: false,
      userinfo_endpoint: `${GRAPH_RESOURCE}/oidc/userinfo`,
      authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
      device_authorization_endpoint: `${base}/oauth2/v2.0/devicecode`,
      http_logout_supported: true,
      frontchannel_logout_supported: true,
      end_session_endpoint: `${base}/oauth2/v2.0/logout`,
      claims_supported: [
        'sub',
        'iss',
        'cloud_instance_name',
        'cloud_instance_host_name',
        'cloud_graph_host_name',
        'msgraph_host',
        'aud',
        'exp',
        'iat',
        'auth_time',
        'acr',
        'nonce',
        'preferred_username',
        'name',
        'tid',
        'ver',
        'at_hash',
        'c_hash',
        'email',
      ],
      kerberos_endpoint: `${base}/kerberos`,
      tenant_region_scope: 'WW',
      cloud_instance_name: 'microsoftonline.com',
      cloud_graph_host_name: 'graph.windows.net',
      msgraph_host: 'graph.microsoft.com',
      rbac_url: 'https://pas.windows.net',
    };
  }

  async function handler(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const reqUrl = new URL(req.url ?? '/', 'https://stand-in');
    const match =
      /^\/([^/]+)\/(v2\.0\/\.well-known\/openid-configuration|discovery\/v2\.0\/keys|oauth2\/v2\.0\/token)$/.exec(
        reqUrl.pathname,
      );
    const tid = match?.[1] ?? '';
    const endpoint = match?.[2];
    await delay(endpoint ? latencyMs : 0);
    if (endpoint === 'oauth2/v2.0/token' && req.method === 'POST') {
      await handleToken(req, res, tid, reqUrl.searchParams);
      return;
    }
    if (endpoint && endpoint !== 'oauth2/v2.0/token' && req.method === 'GET') {
      if (!tenants.has(tid)) {
        sendEntraError(
          res,
          new EntraError(400, 'invalid_tenant', 90002, `Tenant '${tid}' not found.`),
          randomUUID(),
        );
        return;
      }
      if (endpoint === 'discovery/v2.0/keys') {
        hits.jwks++;
        sendJson(res, 200, keys.jwks(), { 'cache-control': 'max-age=86400, private' });
      } else {
        hits.openidConfiguration++;
        sendJson(res, 200, openidConfiguration(tid), { 'cache-control': 'max-age=86400, private' });
      }
      return;
    }
    sendJson(res, 404, {
      error: 'not_found',
      error_description: `No stand-in endpoint for ${req.method} ${reqUrl.pathname}`,
    });
  }

  const server = await startHttps(options.tls, options.port ?? 0, handler);
  url = server.url;

  return {
    url,
    port: server.port,
    keys,
    faults,
    holds,
    requests,
    hits,
    count: (grantType) => requests.filter((r) => grantType === undefined || r.grantType === grantType).length,
    clearRecords: () => {
      requests.length = 0;
      hits.openidConfiguration = 0;
      hits.jwks = 0;
    },
    issuer,
    v1Issuer,
    tokenEndpoint,
    setUserState(nameOrOid, state) {
      const { oid } = devUser(nameOrOid);
      if (state === 'ok') {
        // Refresh tokens revoked earlier stay revoked, as on Entra: 'ok' only affects what comes next.
        userStates.delete(oid);
        return;
      }
      userStates.set(oid, state);
      // Revocation ("revoke sessions") invalidates every refresh token issued so far.
      if (state === 'revoked') revokedUpTo.set(oid, rtSeq);
    },
    async issueUserToken(opts) {
      const user = userFor(opts.user, opts.tenantId);
      const api = resources.find((r) => r.id === `api://${API_APP.clientId}`)!;
      return signUserAccessToken({
        user,
        resource: api,
        audience: opts.audience,
        permissions: opts.scopes ?? [API_APP.scope],
        clientId: opts.clientId ?? CLIENT_APP.clientId,
        clientAuthLevel: '0',
        lifetimeSec: opts.expiresInSec ?? accessLifetime,
        notBeforeOffsetSec: opts.notBeforeOffsetSec,
        version: opts.version ?? apiTokenVersion,
        kid: opts.kid,
        extraClaims: opts.extraClaims,
        signingKeys: opts.signingKeys,
      });
    },
    async verifyIssued(token, audiences) {
      return (await keys.verify(token, { audience: audiences })).payload;
    },
    ageRefreshTokens(seconds, nameOrOid) {
      const oid = nameOrOid === undefined ? undefined : devUser(nameOrOid).oid;
      for (const rt of refreshTokens.values())
        if (oid === undefined || rt.oid === oid) rt.issuedAt -= seconds;
    },
    registerClientCertificate(clientId, certificatePem) {
      const client = clients.get(clientId);
      if (!client?.confidential) throw new Error(`no confidential client ${clientId}`);
      const cert = new X509Certificate(certificatePem);
      client.certificates.push({
        x5t: createHash('sha1').update(cert.raw).digest('base64url'),
        x5tS256: createHash('sha256').update(cert.raw).digest('base64url'),
        publicKey: cert.publicKey,
      });
    },
    addFederatedCredential(clientId, credential) {
      const client = clients.get(clientId);
      if (!client?.confidential) throw new Error(`no confidential client ${clientId}`);
      client.federatedCredentials.push({ ...credential, audiences: [...credential.audiences] });
    },
    clearFederatedCredentials(clientId) {
      const client = clients.get(clientId);
      if (client) client.federatedCredentials.length = 0;
    },
    async issueManagedIdentityToken(identity, resource) {
      const name = resource.replace(/\/\.default$/, '').replace(/\/$/, '');
      const iat = nowSec();
      // Entra issues managed identities' tokens for about a day.
      const exp = iat + 86399;
      const common = {
        iat,
        nbf: iat,
        exp,
        oid: identity.objectId,
        sub: identity.objectId,
        tid: DEV_TENANT_ID,
      };
      if (name === TOKEN_EXCHANGE_RESOURCE || name === TOKEN_EXCHANGE_APP_ID) {
        const accessToken = await keys.sign({
          ...common,
          // A v2.0 token names its resource by app id.
          aud: TOKEN_EXCHANGE_APP_ID,
          iss: issuer(DEV_TENANT_ID),
          azp: identity.clientId,
          azpacr: '2',
          idtyp: 'app',
          uti: b64url(16),
          ver: '2.0',
        });
        return { accessToken, expiresOn: exp, resource };
      }
      const target = resources.find((r) => r.aliases.includes(name) && r.id !== `api://${API_APP.clientId}`);
      if (!target) {
        throw new Error(`AADSTS500011: The resource principal named ${name} was not found in the tenant.`);
      }
      const accessToken = await keys.sign({
        ...common,
        aud: target.id,
        iss: v1Issuer(DEV_TENANT_ID),
        appid: identity.clientId,
        appidacr: '2',
        idp: v1Issuer(DEV_TENANT_ID),
        idtyp: 'app',
        // Managed identities' tokens say which identity resource they are.
        xms_mirid: `/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/local/providers/Microsoft.ManagedIdentity/userAssignedIdentities/${identity.clientId}`,
        uti: b64url(16),
        ver: '1.0',
      });
      return { accessToken, expiresOn: exp, resource };
    },
    setAppRoles(clientId, resourceId, roles) {
      const resource = resourceNamed(resourceId);
      const perClient = appRoles.get(clientId) ?? new Map<string, string[]>();
      perClient.set(resource.id, [...roles]);
      appRoles.set(clientId, perClient);
    },
    close: () => server.close(),
  };
}
