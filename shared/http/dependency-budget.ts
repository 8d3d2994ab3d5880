/**
 * How long one HTTP request may wait on its dependencies, and how that is shared out. Each
 * dependency call gets a per-try timeout, a small number of tries and a deadline for the whole
 * call (back-offs and a server's Retry-After included), so that the longest chain of calls one
 * request makes, with any one dependency hanging, still answers within `requestMs`. README's
 * "Waits and retries" table states the same numbers; change both together.
 *
 * The chains (sequential calls): a scheduled send is identity → Key Vault → storage
 * (3 + 3.5 + 3.5 s); a send now is identity → Graph, with the Key Vault write beside Graph
 * (3 + max(5, 3.5) s); PUT /api/me/registration is identity → Key Vault.
 */
export const DEPENDENCY_BUDGET = Object.freeze({
  /** What a client app can count on: an answer (503 `upstream_unavailable` at worst) within this. */
  requestMs: 10_000,
  /** msal token requests (OBO, refresh token) and the OpenID metadata: one try, no retry. */
  identity: Object.freeze({ perTryMs: 3000, tries: 1 }),
  /**
   * Key Vault (SecretClient), its credential's token requests included: two tries, the second
   * after 125-250 ms, and the whole call (Retry-After waits too) cut at `deadlineMs`.
   */
  keyVault: Object.freeze({ perTryMs: 1500, tries: 2, retryDelayMs: 250, deadlineMs: 3500 }),
  /** Key Vault's asynchronous delete/recover, and a name still being purged: waited out this long. */
  keyVaultPoll: Object.freeze({ intervalMs: 500, timeoutMs: 5000 }),
  /** The storage queue (each write; creating the queues on first use counts as part of it). */
  storage: Object.freeze({ perTryMs: 1500, tries: 2, retryDelayMs: 250, deadlineMs: 3500 }),
  /** Microsoft Graph: one try; retrying is the caller's (503 + Retry-After) or the queue's. */
  graph: Object.freeze({ perTryMs: 5000, tries: 1 }),
});

export interface CallBudget {
  perTryMs: number;
  tries: number;
  retryDelayMs: number;
  deadlineMs: number;
}
