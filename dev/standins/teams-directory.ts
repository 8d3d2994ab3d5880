import { DEV_TENANT_ID, DEV_USERS, devUser, type DevUser } from './identities';

// Who the Teams endpoint can notify: the users of each tenant's directory, and whether the Teams
// app is installed for each (personally, or in a team or chat they belong to — one flag here).

export interface TeamsUserSpec {
  /** A dev user's name or oid, or any other name / GUID for a made-up user (see `devUser`). */
  user: string;
  /** Whether the Teams app is installed for this user; default true. */
  installed?: boolean;
  /** Default: the dev user's own tenant, or DEV_TENANT_ID for a made-up user. */
  tenantId?: string;
}

interface Entry {
  user: DevUser;
  installed: boolean;
  /** What `reset()` returns `installed` to. */
  initiallyInstalled: boolean;
}

/** Carol has no Teams app, so "not installed" can be tried locally; everyone else has it. */
const NOT_INSTALLED_BY_DEFAULT = new Set(['carol']);

function key(oid: string, tid: string): string {
  return `${tid.toLowerCase()}|${oid.toLowerCase()}`;
}

export class TeamsDirectory {
  private readonly entries = new Map<string, Entry>();

  constructor(extra: ReadonlyArray<string | TeamsUserSpec> = []) {
    for (const u of DEV_USERS) this.put(u, !NOT_INSTALLED_BY_DEFAULT.has(u.name));
    for (const spec of extra) this.add(typeof spec === 'string' ? { user: spec } : spec);
  }

  private put(user: DevUser, installed: boolean): DevUser {
    this.entries.set(key(user.oid, user.tid), { user, installed, initiallyInstalled: installed });
    return user;
  }

  /** Adds (or replaces) a user; returns it as the Entra stand-in would issue tokens for it. */
  add(spec: TeamsUserSpec): DevUser {
    const base = devUser(spec.user, spec.tenantId ?? DEV_TENANT_ID);
    const user = spec.tenantId && base.tid !== spec.tenantId ? { ...base, tid: spec.tenantId } : base;
    return this.put(user, spec.installed ?? true);
  }

  /** A user of `tenantId` by object id or user principal name (both case-insensitive). */
  find(idOrUpn: string, tenantId: string): Entry | undefined {
    const wanted = idOrUpn.toLowerCase();
    for (const entry of this.entries.values()) {
      if (entry.user.tid.toLowerCase() !== tenantId.toLowerCase()) continue;
      if (entry.user.oid.toLowerCase() === wanted || entry.user.upn.toLowerCase() === wanted) return entry;
    }
    return undefined;
  }

  /** By name, oid or UPN, in any tenant (for the test setters). */
  lookup(nameOrIdOrUpn: string, tenantId?: string): Entry | undefined {
    const wanted = nameOrIdOrUpn.toLowerCase();
    const oid = devUser(nameOrIdOrUpn).oid.toLowerCase();
    for (const entry of this.entries.values()) {
      if (tenantId && entry.user.tid.toLowerCase() !== tenantId.toLowerCase()) continue;
      const u = entry.user;
      if (u.name === nameOrIdOrUpn || u.oid.toLowerCase() === oid || u.upn.toLowerCase() === wanted)
        return entry;
    }
    return undefined;
  }

  /** Install states back to what they were when each user was added; added users stay. */
  reset(): void {
    for (const entry of this.entries.values()) entry.installed = entry.initiallyInstalled;
  }
}
