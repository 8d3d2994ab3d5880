// Stand-in for the Azure Key Vault secrets data plane, close enough to the wire protocol that the real
// `@azure/keyvault-secrets` SecretClient runs against it unchanged, challenge-based auth included.
// Where an answer's wording comes from a public source it is cited next to the code; where no source
// was found the comment says the wording is ours. Known differences from Key Vault: deletion and
// recovery complete at once (Key Vault finishes them asynchronously), nothing is purged after the
// retention period, there is no RBAC/access policy (any token of the tenant may do anything), no
// backup/restore, and no CAE claims challenge.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { decodeJwt, type JWTPayload } from 'jose';
import type { LocalTls } from '../tls';
import { FaultQueue, Holds, delay, readBody, sendJson, startHttps, type Fault } from './https';
import { KEY_VAULT_APP_ID, KEY_VAULT_RESOURCE } from './identities';

export type KeyVaultOp =
  | 'set'
  | 'update'
  | 'get'
  | 'getVersion'
  | 'delete'
  | 'getDeleted'
  | 'purge'
  | 'recover'
  | 'list'
  | 'listVersions'
  | 'listDeleted'
  | 'challenge'
  | 'unsupported';

/** One request as the vault saw it. Never carries values or tokens. */
export interface KeyVaultOperation {
  op: KeyVaultOp;
  name?: string;
  status: number;
}

export interface LiveSecretView {
  value: string;
  version: string;
  tags: Record<string, string> | undefined;
  contentType: string | undefined;
  enabled: boolean;
  expiresOn: Date | undefined;
  notBefore: Date | undefined;
}

export interface KeyVaultStandInOptions {
  tls: LocalTls;
  /** 0 picks a free port. */
  port?: number;
  /** The Entra authority host named in the challenge, e.g. `https://127.0.0.1:7081`. */
  authorityUrl: string;
  /** The vault's tenant: named in the challenge and required as the token's `tid`. */
  tenantId: string;
  /** Throws unless the token was issued by the Entra stand-in for one of `audiences`. */
  verifyToken: (token: string, audiences: string[]) => Promise<JWTPayload>;
  /** Added before every answer (the benchmark sets it). */
  latencyMs?: number;
}

export interface KeyVaultStandIn {
  /** The vault URL, `https://127.0.0.1:PORT` (no trailing slash). */
  url: string;
  port: number;
  /** The next N requests get this status instead of their real answer, before auth is looked at. */
  faults: FaultQueue;
  /** Authenticated requests a test holds before the vault acts on them, until it releases them. */
  holds: Holds<{ op: KeyVaultOp; name?: string }>;
  /** Every request, in arrival order. */
  operations: KeyVaultOperation[];
  count(op: KeyVaultOp, filter?: { name?: string; status?: number }): number;
  /** The latest version of a live (not deleted) secret, as a test on the far side sees it. */
  current(name: string): LiveSecretView | undefined;
  liveNames(): string[];
  deletedNames(): string[];
  versionCount(name: string): number;
  /** Forgets every secret, deleted secret and logged operation. */
  reset(): void;
  close(): Promise<void>;
}

/** Key Vault's own answers: 90 days is its default soft-delete retention, recovery level as it reports it. */
const RECOVERABLE_DAYS = 90;
const RECOVERY_LEVEL = 'Recoverable+Purgeable';
const NAME_PATTERN = /^[0-9a-zA-Z-]{1,127}$/;
// Documented limits (about-secrets): 25k bytes per value, 15 tags, 255 characters of content type.
const MAX_VALUE_BYTES = 25 * 1024;
const MAX_TAGS = 15;
const MAX_CONTENT_TYPE = 255;
const DEFAULT_PAGE = 25;
// What the SDKs send: 7.x (with previews), 2016-10-01, and date versions such as 2025-07-01 (4.11's default).
const API_VERSION = /^(7\.\d+(-preview(\.\d+)?)?|\d{4}-\d{2}-\d{2}(-preview)?)$/;

interface Version {
  version: string;
  value: string;
  contentType?: string;
  tags?: Record<string, string>;
  enabled: boolean;
  nbf?: number;
  exp?: number;
  created: number;
  updated: number;
}

interface Secret {
  /** As first created: names are case-insensitive but case-preserving. */
  name: string;
  versions: Version[];
}

interface DeletedSecret {
  secret: Secret;
  deletedDate: number;
  scheduledPurgeDate: number;
}

class KeyVaultError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly inner?: string,
  ) {
    super(message);
  }
}

const nowSeconds = (): number => Math.floor(Date.now() / 1000);

function notFound(name: string): KeyVaultError {
  // Message as Key Vault words it (seen in azure-sdk-for-js issue 25489).
  return new KeyVaultError(
    404,
    'SecretNotFound',
    `A secret with (name/id) ${name} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182`,
  );
}

function deletedNotFound(name: string): KeyVaultError {
  return new KeyVaultError(404, 'SecretNotFound', `Deleted Secret not found: ${name}`);
}

function badParameter(message: string): KeyVaultError {
  return new KeyVaultError(400, 'BadParameter', message);
}

function errorBody(err: KeyVaultError): unknown {
  return {
    error: {
      code: err.code,
      message: err.message,
      ...(err.inner ? { innererror: { code: err.inner } } : {}),
    },
  };
}

/** Key Vault's body for a fault status. 429's is Key Vault's own (AzureSignTool issue 219); 503's and the
 * rest follow the same `{error:{code,message}}` shape with wording of our own. */
function faultBody(fault: Fault): unknown {
  if (fault.body !== undefined) return fault.body;
  if (fault.status === 429) {
    return {
      error: {
        code: 'Throttled',
        message:
          'Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached',
      },
    };
  }
  if (fault.status === 503) {
    return { error: { code: 'ServiceUnavailable', message: 'The service is temporarily unavailable.' } };
  }
  return { error: { code: 'InternalServerError', message: 'An unexpected error occurred.' } };
}

interface Route {
  op: KeyVaultOp;
  name?: string;
  version?: string;
}

function route(method: string, pathname: string): Route {
  // Key Vault tolerates the doubled slash some clients send after the vault URL, and the SDK's getSecret
  // asks for `/secrets/{name}/` (empty version): both collapse here.
  let parts: string[];
  try {
    parts = pathname
      .split('/')
      .filter((p) => p !== '')
      .map((p) => decodeURIComponent(p));
  } catch {
    return { op: 'unsupported' };
  }
  if (parts.length > 3) return { op: 'unsupported' };
  const [collection, rawName, third] = parts;
  if (collection === 'secrets') {
    if (rawName === undefined) return method === 'GET' ? { op: 'list' } : { op: 'unsupported' };
    if (third === undefined) {
      if (method === 'PUT') return { op: 'set', name: rawName };
      if (method === 'GET') return { op: 'get', name: rawName };
      if (method === 'DELETE') return { op: 'delete', name: rawName };
      return { op: 'unsupported', name: rawName };
    }
    if (third === 'versions' && method === 'GET') return { op: 'listVersions', name: rawName };
    if (method === 'GET') return { op: 'getVersion', name: rawName, version: third };
    if (method === 'PATCH') return { op: 'update', name: rawName, version: third };
    return { op: 'unsupported', name: rawName };
  }
  if (collection === 'deletedsecrets') {
    if (rawName === undefined) return method === 'GET' ? { op: 'listDeleted' } : { op: 'unsupported' };
    if (third === undefined) {
      if (method === 'GET') return { op: 'getDeleted', name: rawName };
      if (method === 'DELETE') return { op: 'purge', name: rawName };
      return { op: 'unsupported', name: rawName };
    }
    if (third === 'recover' && method === 'POST') return { op: 'recover', name: rawName };
  }
  return { op: 'unsupported', ...(rawName !== undefined ? { name: rawName } : {}) };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parseTags(v: unknown): Record<string, string> | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isRecord(v)) throw badParameter('Property tags has invalid value');
  const entries = Object.entries(v);
  if (entries.length > MAX_TAGS) throw badParameter(`A secret can have at most ${MAX_TAGS} tags.`);
  const tags: Record<string, string> = {};
  for (const [k, val] of entries) {
    if (typeof val !== 'string') throw badParameter('Property tags has invalid value');
    tags[k] = val;
  }
  return tags;
}

interface ParsedAttributes {
  enabled?: boolean;
  nbf?: number;
  exp?: number;
}

function parseAttributes(v: unknown): ParsedAttributes {
  if (v === undefined || v === null) return {};
  if (!isRecord(v)) throw badParameter('Property attributes has invalid value');
  const out: ParsedAttributes = {};
  if (v.enabled !== undefined && v.enabled !== null) {
    if (typeof v.enabled !== 'boolean') throw badParameter('Property enabled has invalid value');
    out.enabled = v.enabled;
  }
  for (const key of ['nbf', 'exp'] as const) {
    const t = v[key];
    if (t === undefined || t === null) continue;
    if (typeof t !== 'number' || !Number.isInteger(t))
      throw badParameter(`Property ${key} has invalid value`);
    out[key] = t;
  }
  return out;
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  let parsed: unknown;
  try {
    const text = (await readBody(req)).toString('utf8');
    parsed = text === '' ? {} : JSON.parse(text);
  } catch {
    throw badParameter('The request body is not valid JSON.');
  }
  if (!isRecord(parsed)) throw badParameter('The request body is not valid JSON.');
  return parsed;
}

function bearerToken(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  if (!header) return undefined;
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  return match?.[1];
}

function joseCode(err: unknown): string | undefined {
  return isRecord(err) && typeof err.code === 'string' ? err.code : undefined;
}

export async function startKeyVaultStandIn(options: KeyVaultStandInOptions): Promise<KeyVaultStandIn> {
  const { tenantId, verifyToken } = options;
  const latencyMs = options.latencyMs ?? 0;
  const authority = options.authorityUrl.replace(/\/+$/, '');
  // No spaces inside values: the SDK splits this header on commas and spaces.
  const challenge = `Bearer authorization="${authority}/${tenantId}", resource="${KEY_VAULT_RESOURCE}"`;
  const audiences = [KEY_VAULT_RESOURCE, KEY_VAULT_APP_ID];

  const live = new Map<string, Secret>();
  const deleted = new Map<string, DeletedSecret>();
  const operations: KeyVaultOperation[] = [];
  const faults = new FaultQueue();
  const holds = new Holds<{ op: KeyVaultOp; name?: string }>();
  let vaultUrl = '';

  const latest = (s: Secret): Version => s.versions[s.versions.length - 1]!;
  const secretId = (name: string, version?: string): string =>
    version ? `${vaultUrl}/secrets/${name}/${version}` : `${vaultUrl}/secrets/${name}`;

  function attributes(v: Version): Record<string, unknown> {
    return {
      enabled: v.enabled,
      ...(v.nbf !== undefined ? { nbf: v.nbf } : {}),
      ...(v.exp !== undefined ? { exp: v.exp } : {}),
      created: v.created,
      updated: v.updated,
      recoverableDays: RECOVERABLE_DAYS,
      recoveryLevel: RECOVERY_LEVEL,
    };
  }

  /** SecretBundle; `withValue` false where Key Vault leaves the value out (delete, recover, lists). */
  function bundle(s: Secret, v: Version, withValue: boolean): Record<string, unknown> {
    return {
      ...(withValue ? { value: v.value } : {}),
      id: secretId(s.name, v.version),
      ...(v.contentType !== undefined ? { contentType: v.contentType } : {}),
      attributes: attributes(v),
      ...(v.tags !== undefined ? { tags: v.tags } : {}),
    };
  }

  function deletedBundle(d: DeletedSecret): Record<string, unknown> {
    return {
      recoveryId: `${vaultUrl}/deletedsecrets/${d.secret.name}`,
      deletedDate: d.deletedDate,
      scheduledPurgeDate: d.scheduledPurgeDate,
      ...bundle(d.secret, latest(d.secret), false),
    };
  }

  function item(s: Secret, v: Version, withVersion: boolean): Record<string, unknown> {
    return {
      id: secretId(s.name, withVersion ? v.version : undefined),
      attributes: attributes(v),
      ...(v.contentType !== undefined ? { contentType: v.contentType } : {}),
      ...(v.tags !== undefined ? { tags: v.tags } : {}),
    };
  }

  /** One page of `items`, with a `nextLink` carrying the offset as Key Vault's opaque `$skiptoken`. */
  function page(pathname: string, query: URLSearchParams, items: unknown[]): Record<string, unknown> {
    const maxRaw = query.get('maxresults');
    let max = DEFAULT_PAGE;
    if (maxRaw !== null) {
      max = Number(maxRaw);
      // Documented range 1..25; the wording of the refusal is ours.
      if (!Number.isInteger(max) || max < 1 || max > DEFAULT_PAGE) {
        throw badParameter(
          `Invalid value for maxresults: ${maxRaw}. It must be between 1 and ${DEFAULT_PAGE}.`,
        );
      }
    }
    let offset = 0;
    const skip = query.get('$skiptoken');
    if (skip !== null) {
      const decoded = Number(Buffer.from(skip, 'base64url').toString('utf8'));
      if (!Number.isInteger(decoded) || decoded < 0) throw badParameter('Invalid $skiptoken.');
      offset = decoded;
    }
    const slice = items.slice(offset, offset + max);
    let nextLink: string | null = null;
    if (offset + max < items.length) {
      const next = new URLSearchParams();
      next.set('api-version', query.get('api-version') ?? '');
      next.set('$skiptoken', Buffer.from(String(offset + max), 'utf8').toString('base64url'));
      if (maxRaw !== null) next.set('maxresults', String(max));
      nextLink = `${vaultUrl}${pathname}?${next.toString()}`;
    }
    return { value: slice, nextLink };
  }

  const byName = <T extends { name: string }>(a: T, b: T): number =>
    a.name.toLowerCase() < b.name.toLowerCase() ? -1 : 1;

  function checkName(name: string): void {
    if (!NAME_PATTERN.test(name)) throw badParameter(`The request URI contains an invalid name: ${name}`);
  }

  function liveSecret(name: string): Secret {
    const s = live.get(name.toLowerCase());
    if (!s) throw notFound(name);
    return s;
  }

  function readable(v: Version): void {
    // Disabled versions are refused (azure-sdk-for-js issue 24756); expired and not-yet-valid ones are
    // not: "A secret's get operation will work for not-yet-valid and expired secrets" (about-secrets).
    if (!v.enabled) {
      throw new KeyVaultError(
        403,
        'Forbidden',
        'Operation get is not allowed on a disabled secret.',
        'SecretDisabled',
      );
    }
  }

  async function operate(
    r: Route,
    req: IncomingMessage,
    url: URL,
  ): Promise<{ status: number; body?: unknown }> {
    const name = r.name ?? '';
    switch (r.op) {
      case 'set': {
        checkName(name);
        const key = name.toLowerCase();
        if (deleted.has(key)) {
          // Exact wording and inner code as Key Vault answers (quoted in a comment of a public repo's
          // SecretClient wrapper; same shape as ObjectIsBeingRecovered in terraform-provider-azurerm 12285).
          throw new KeyVaultError(
            409,
            'Conflict',
            `Secret ${name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged.`,
            'ObjectIsDeletedButRecoverable',
          );
        }
        const body = await readJson(req);
        if (typeof body.value !== 'string') throw badParameter('Property value is required.');
        if (Buffer.byteLength(body.value, 'utf8') > MAX_VALUE_BYTES) {
          throw badParameter(`The secret value exceeds the maximum size of ${MAX_VALUE_BYTES} bytes.`);
        }
        let contentType: string | undefined;
        if (body.contentType !== undefined && body.contentType !== null) {
          if (typeof body.contentType !== 'string' || body.contentType.length > MAX_CONTENT_TYPE) {
            throw badParameter('Property contentType has invalid value');
          }
          contentType = body.contentType;
        }
        const tags = parseTags(body.tags);
        const attrs = parseAttributes(body.attributes);
        const now = nowSeconds();
        const v: Version = {
          version: randomUUID().replace(/-/g, ''),
          value: body.value,
          enabled: attrs.enabled ?? true,
          created: now,
          updated: now,
          ...(contentType !== undefined ? { contentType } : {}),
          ...(tags !== undefined ? { tags } : {}),
          ...(attrs.nbf !== undefined ? { nbf: attrs.nbf } : {}),
          ...(attrs.exp !== undefined ? { exp: attrs.exp } : {}),
        };
        let s = live.get(key);
        if (!s) {
          s = { name, versions: [] };
          live.set(key, s);
        }
        s.versions.push(v);
        return { status: 200, body: bundle(s, v, true) };
      }
      case 'update': {
        const s = liveSecret(name);
        const v = s.versions.find((x) => x.version === r.version);
        if (!v) throw notFound(`${name}/${r.version ?? ''}`);
        const body = await readJson(req);
        if (body.contentType !== undefined) {
          if (body.contentType === null) delete v.contentType;
          else if (typeof body.contentType === 'string') v.contentType = body.contentType;
          else throw badParameter('Property contentType has invalid value');
        }
        if (body.tags !== undefined) {
          const tags = parseTags(body.tags);
          if (tags === undefined) delete v.tags;
          else v.tags = tags;
        }
        const attrs = parseAttributes(body.attributes);
        if (attrs.enabled !== undefined) v.enabled = attrs.enabled;
        if (attrs.nbf !== undefined) v.nbf = attrs.nbf;
        if (attrs.exp !== undefined) v.exp = attrs.exp;
        v.updated = nowSeconds();
        return { status: 200, body: bundle(s, v, false) };
      }
      case 'get': {
        const s = liveSecret(name);
        const v = latest(s);
        readable(v);
        return { status: 200, body: bundle(s, v, true) };
      }
      case 'getVersion': {
        const s = liveSecret(name);
        const v = s.versions.find((x) => x.version === r.version);
        if (!v) throw notFound(`${name}/${r.version ?? ''}`);
        readable(v);
        return { status: 200, body: bundle(s, v, true) };
      }
      case 'listVersions': {
        // A name with no versions lists as empty, not 404 (recorded SDK sessions show this for
        // certificates: `{"value":[],"nextLink":null}`).
        const s = live.get(name.toLowerCase());
        const items = s ? s.versions.map((v) => item(s, v, true)) : [];
        return { status: 200, body: page(url.pathname, url.searchParams, items) };
      }
      case 'list': {
        // Values never appear in lists, and each secret is listed once, by its base identifier.
        const items = [...live.values()].sort(byName).map((s) => item(s, latest(s), false));
        return { status: 200, body: page(url.pathname, url.searchParams, items) };
      }
      case 'delete': {
        const key = name.toLowerCase();
        const s = liveSecret(name);
        const deletedDate = nowSeconds();
        const d: DeletedSecret = {
          secret: s,
          deletedDate,
          scheduledPurgeDate: deletedDate + RECOVERABLE_DAYS * 24 * 60 * 60,
        };
        live.delete(key);
        // Real deletion completes asynchronously (GET /deletedsecrets/{name} is 404 for a while, which the
        // SDK's poller waits out); here it is complete before the answer leaves.
        deleted.set(key, d);
        return { status: 200, body: deletedBundle(d) };
      }
      case 'getDeleted': {
        const d = deleted.get(name.toLowerCase());
        if (!d) throw deletedNotFound(name);
        return { status: 200, body: deletedBundle(d) };
      }
      case 'listDeleted': {
        const items = [...deleted.values()]
          .sort((a, b) => byName(a.secret, b.secret))
          .map((d) => ({
            recoveryId: `${vaultUrl}/deletedsecrets/${d.secret.name}`,
            deletedDate: d.deletedDate,
            scheduledPurgeDate: d.scheduledPurgeDate,
            ...item(d.secret, latest(d.secret), false),
          }));
        return { status: 200, body: page(url.pathname, url.searchParams, items) };
      }
      case 'purge': {
        const key = name.toLowerCase();
        if (!deleted.has(key)) throw deletedNotFound(name);
        deleted.delete(key);
        return { status: 204 };
      }
      case 'recover': {
        const key = name.toLowerCase();
        const d = deleted.get(key);
        if (!d) throw deletedNotFound(name);
        deleted.delete(key);
        // Recovery is asynchronous in Key Vault too (the SDK's poller GETs the secret until 200); here it
        // is immediate.
        live.set(key, d.secret);
        return { status: 200, body: bundle(d.secret, latest(d.secret), false) };
      }
      case 'challenge':
      case 'unsupported':
        // Wording is ours: Key Vault's answer to an unknown path was not found in any source.
        throw new KeyVaultError(404, 'NotFound', `The requested operation is not supported by this vault.`);
    }
  }

  /** Why a bearer token is refused, in Key Vault's words where known (AKV10022: argoproj-labs
   * argocd-vault-plugin 621; AKV10032: azure-sdk-for-js 6221; AKV10046: Azure-Samples azuresandbox 362). */
  async function authenticate(token: string): Promise<KeyVaultError | undefined> {
    let claims: JWTPayload;
    try {
      claims = decodeJwt(token);
    } catch {
      return new KeyVaultError(401, 'Unauthorized', 'AKV10000: Request is missing a Bearer or PoP token.');
    }
    const aud = Array.isArray(claims.aud) ? claims.aud : claims.aud !== undefined ? [claims.aud] : [];
    if (!aud.some((a) => audiences.includes(a))) {
      return new KeyVaultError(
        401,
        'Unauthorized',
        `AKV10022: Invalid audience. Expected ${KEY_VAULT_RESOURCE} or ${KEY_VAULT_APP_ID}, found: ${aud.join(', ')}.`,
      );
    }
    let verified: JWTPayload;
    try {
      verified = await verifyToken(token, audiences);
    } catch (err) {
      if (joseCode(err) === 'ERR_JWKS_NO_MATCHING_KEY') {
        return new KeyVaultError(
          401,
          'Unauthorized',
          'AKV10046: Unable to resolve the key used for signature validation.',
        );
      }
      if (joseCode(err) === 'ERR_JWT_EXPIRED') {
        return new KeyVaultError(401, 'Unauthorized', 'Error validating token: the token has expired.');
      }
      // Signature, issuer or any other failure: the wording is ours.
      return new KeyVaultError(
        401,
        'Unauthorized',
        'Error validating token: the token could not be validated.',
      );
    }
    // Only the tenant is compared: the issuer's host differs between Entra and its stand-in, while the
    // message keeps Key Vault's v1 issuer form.
    if (verified.tid !== tenantId) {
      const iss = typeof verified.iss === 'string' ? verified.iss : '(none)';
      return new KeyVaultError(
        401,
        'Unauthorized',
        `AKV10032: Invalid issuer. Expected one of https://sts.windows.net/${tenantId}/, found ${iss}.`,
      );
    }
    return undefined;
  }

  function answer(
    req: IncomingMessage,
    res: ServerResponse,
    status: number,
    body: unknown,
    extra: Record<string, string> = {},
  ): void {
    const headers: Record<string, string> = {
      'cache-control': 'no-cache',
      'x-ms-request-id': randomUUID(),
      'x-ms-keyvault-service-version': '1.9.0.0-standin',
      ...extra,
    };
    const clientRequestId = req.headers['x-ms-client-request-id'];
    if (typeof clientRequestId === 'string') headers['x-ms-client-request-id'] = clientRequestId;
    if (status === 204) {
      res.writeHead(204, headers);
      res.end();
      return;
    }
    sendJson(res, status, body, headers);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    await delay(latencyMs);
    const url = new URL(req.url ?? '/', vaultUrl);
    const r = route(req.method ?? 'GET', url.pathname);
    const log = (op: KeyVaultOp, status: number): void => {
      operations.push({ op, status, ...(r.name !== undefined ? { name: r.name } : {}) });
    };

    const fault = faults.take();
    if (fault) {
      log(r.op, fault.status);
      answer(
        req,
        res,
        fault.status,
        faultBody(fault),
        fault.retryAfter !== undefined ? { 'retry-after': String(fault.retryAfter) } : {},
      );
      return;
    }

    // Auth comes first and never reads the body: the SDK's first request carries none and waits for the
    // challenge, and a refused request must not cost a body read.
    const token = bearerToken(req);
    if (token === undefined) {
      log('challenge', 401);
      answer(
        req,
        res,
        401,
        { error: { code: 'Unauthorized', message: 'AKV10000: Request is missing a Bearer or PoP token.' } },
        { 'www-authenticate': challenge },
      );
      return;
    }
    const refused = await authenticate(token);
    if (refused) {
      log(r.op, 401);
      answer(req, res, 401, errorBody(refused), { 'www-authenticate': challenge });
      return;
    }

    try {
      const apiVersion = url.searchParams.get('api-version');
      // Wording of both refusals is ours; that Key Vault requires the parameter is documented.
      if (!apiVersion) throw badParameter('The api-version query parameter is missing.');
      if (!API_VERSION.test(apiVersion))
        throw badParameter(`The specified version (${apiVersion}) is not recognized.`);
      await holds.pass({ op: r.op, ...(r.name !== undefined ? { name: r.name } : {}) });
      const result = await operate(r, req, url);
      log(r.op, result.status);
      answer(req, res, result.status, result.body);
    } catch (err) {
      if (!(err instanceof KeyVaultError)) throw err;
      log(r.op, err.status);
      answer(req, res, err.status, errorBody(err));
    }
  }

  const server = await startHttps(options.tls, options.port ?? 0, handle);
  vaultUrl = server.url;

  return {
    url: server.url,
    port: server.port,
    faults,
    holds,
    operations,
    count: (op, filter = {}) =>
      operations.filter(
        (o) =>
          o.op === op &&
          (filter.name === undefined || o.name?.toLowerCase() === filter.name.toLowerCase()) &&
          (filter.status === undefined || o.status === filter.status),
      ).length,
    current(name) {
      const s = live.get(name.toLowerCase());
      if (!s) return undefined;
      const v = latest(s);
      return {
        value: v.value,
        version: v.version,
        tags: v.tags ? { ...v.tags } : undefined,
        contentType: v.contentType,
        enabled: v.enabled,
        expiresOn: v.exp !== undefined ? new Date(v.exp * 1000) : undefined,
        notBefore: v.nbf !== undefined ? new Date(v.nbf * 1000) : undefined,
      };
    },
    liveNames: () => [...live.values()].map((s) => s.name),
    deletedNames: () => [...deleted.values()].map((d) => d.secret.name),
    versionCount: (name) => live.get(name.toLowerCase())?.versions.length ?? 0,
    reset() {
      live.clear();
      deleted.clear();
      operations.length = 0;
      faults.clear();
      holds.clear();
    },
    close: () => server.close(),
  };
}
