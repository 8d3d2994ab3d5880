import { createHash } from 'node:crypto';

/** Entra ID's tenant and object ids, and our client id, are GUIDs. */
export const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A user named by the only claims the app trusts for it: the verified `tid` and `oid`. */
export interface UserRef {
  tenantId: string;
  userId: string;
}

/** One key per user for the in-memory maps (`{tid}.{oid}`, lowercase: GUIDs have no case). */
export function userKey(user: UserRef): string {
  return `${user.tenantId}.${user.userId}`.toLowerCase();
}

/** A secret's fingerprint, to compare or key by it without keeping the secret itself. */
export function fingerprint(secret: string): string {
  return createHash('sha256').update(secret).digest('base64url');
}
