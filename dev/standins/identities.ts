import { createHash } from 'node:crypto';

// The directory of the local stack: one tenant, the app registration that represents this API,
// the identity the function uses for Key Vault, and a few users. Fixed values, so that a printed
// command keeps working across restarts; none of them exists in any real tenant.

export const DEV_TENANT_ID = '7b1d4f00-0c1a-4e8e-9d2b-5a6f3c2e1d00';
/** A second tenant, not allowed by default: for `tenant_not_allowed`. */
export const OTHER_TENANT_ID = '9c2e5a11-3f4b-4c6d-8e7f-0a1b2c3d4e00';

/** A partner organisation's tenant: the home tenant of the guest user below (B2B collaboration). */
export const PARTNER_TENANT_ID = '2d4f6a80-1b3c-4d5e-8f90-a1b2c3d4e5f6';

/** The app registration that represents graph-notify (its API and its OBO client). */
export const API_APP = {
  clientId: '3f6a2b10-8d4c-4e1f-9a7b-2c5d0e6f1a00',
  clientSecret: 'local-stack-api-secret-not-for-azure',
  scope: 'Notifications.Send',
} as const;

/** What the function's managed identity is in Azure: a client-credentials client for Key Vault. */
export const FUNCTION_IDENTITY = {
  clientId: '5e8c1d22-6b3a-4f9e-8c0d-1e2f3a4b5c00',
  clientSecret: 'local-stack-function-identity-secret',
} as const;

/** A client app that signs users in and calls this API (what `npm run token` pretends to be). */
export const CLIENT_APP = { clientId: 'a1b2c3d4-0000-4000-8000-00000000c11e' } as const;

export interface DevUser {
  name: string;
  oid: string;
  tid: string;
  displayName: string;
  upn: string;
  /**
   * For a B2B guest: the account in its home tenant. The guest's object in this tenant is `oid`,
   * and its tokens say `tid` = this tenant; Entra's `client_info` (so msal's `homeAccountId`)
   * names this home account instead, and the `idp` claim names the home tenant's issuer.
   */
  home?: { oid: string; tid: string };
}

export const DEV_USERS: readonly DevUser[] = [
  {
    name: 'alice',
    oid: '0a11ce00-0000-4000-8000-000000000001',
    tid: DEV_TENANT_ID,
    displayName: 'Alice Local',
    upn: 'alice@graph-notify.local',
  },
  {
    name: 'bob',
    oid: '0b0b0000-0000-4000-8000-000000000002',
    tid: DEV_TENANT_ID,
    displayName: 'Bob Local',
    upn: 'bob@graph-notify.local',
  },
  {
    name: 'carol',
    oid: '0ca201e0-0000-4000-8000-000000000003',
    tid: DEV_TENANT_ID,
    displayName: 'Carol Local',
    upn: 'carol@graph-notify.local',
  },
  {
    // A guest from a partner tenant, invited into this one: allowed (her tokens name this tenant).
    name: 'gina',
    oid: '06e57000-0000-4000-8000-000000000005',
    tid: DEV_TENANT_ID,
    displayName: 'Gina Guest',
    upn: 'gina@partner.example',
    home: { oid: '6e57a000-0000-4000-8000-000000000015', tid: PARTNER_TENANT_ID },
  },
  {
    name: 'mallory',
    oid: '0ba11e00-0000-4000-8000-000000000004',
    tid: OTHER_TENANT_ID,
    displayName: 'Mallory Elsewhere',
    upn: 'mallory@elsewhere.local',
  },
];

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A stable GUID for a made-up user's name (object ids are GUIDs in Entra ID). */
function oidFor(name: string): string {
  const h = createHash('sha256').update(name).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** A known user by name or oid, or a made-up one (for tests with many distinct users) whose oid
 * is the given GUID, or a GUID derived from the given name. */
export function devUser(nameOrOid: string, tid: string = DEV_TENANT_ID): DevUser {
  const known = DEV_USERS.find((u) => u.name === nameOrOid || u.oid === nameOrOid);
  if (known) return known;
  const oid = GUID.test(nameOrOid) ? nameOrOid.toLowerCase() : oidFor(nameOrOid);
  const upn = `${nameOrOid.replace(/[^\w.-]/g, '')}@graph-notify.local`;
  return { name: nameOrOid, oid, tid, displayName: nameOrOid, upn };
}

/** Resource identifiers as Entra ID names them (scopes are `{resource}/{permission}`). */
export const GRAPH_RESOURCE = 'https://graph.microsoft.com';
export const GRAPH_APP_ID = '00000003-0000-0000-c000-000000000000';
export const KEY_VAULT_RESOURCE = 'https://vault.azure.net';
export const KEY_VAULT_APP_ID = 'cfa8b339-82a2-471a-a3c9-0fc0be7a4093';
