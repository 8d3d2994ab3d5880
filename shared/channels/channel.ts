import type { Caller } from '../auth/caller';
import type { UserRef } from '../ids';
import type { TelemetryProperties } from '../telemetry';

/** The channels, as they appear in telemetry, queue messages and answers. */
export type ChannelName = 'notifications' | 'teams';

/** Which error code a validation failure carries: a request's, or a queue message's. */
export type ValidationCode = 'invalid_request' | 'invalid_message';

/** Who a send goes out as: a user (delegated, on their behalf) or the app itself. */
export type Sender = { kind: 'user'; user: UserRef } | { kind: 'app'; tenantId: string };

/** A body as the channel validated and completed it: what it sends, its id, and when. */
export interface Prepared<P> {
  /** What the channel sends, with its ids pinned, so that a retry sends the same; no `deliverAt`. */
  payload: P;
  /** The id a caller asks about and logs name: the appNotificationId, or the activity's id. */
  id: string;
  deliverAt?: string;
}

/** What a queue message carries besides the channel's body: graph-notify's own bookkeeping. */
export interface Envelope {
  correlationId?: string;
  /** Set on a copy put back to retry: how many tries went before. */
  attempt?: number;
  /** Set on a copy put back: the id the sender's message had. */
  originalMessageId?: string;
  /** Set on a copy put back by the per-tenant pacing (not a failed try). */
  paced?: boolean;
}

/**
 * Port: one way of reaching a user, as the shared send paths (HTTP and queue), the token module,
 * telemetry and pacing see it. A channel validates, sends and answers; everything around a send
 * (the exchange, the stored refresh token, scheduling, retries, dead-lettering) is shared.
 */
export interface Channel<P = unknown> {
  readonly name: ChannelName;
  /** Delegated scopes for the OBO exchange and for redeeming the stored refresh token. */
  readonly scopes: readonly string[];
  /** Whether its sends are paced per tenant (TenantPacer). */
  readonly paced: boolean;
  /** The wire name of the body in a queue message (`notification`, `activity`). */
  readonly messageField: string;
  /**
   * Validates and completes a request body or a queue message's body before anything is called:
   * defaults filled in, `id()` used for an id the body leaves out. Pure; throws `code`.
   */
  prepare(body: unknown, now: Date, code: ValidationCode, id: () => string): Prepared<P>;
  /**
   * Whether a caller's send goes out as the caller or as the app (e.g. Teams does not deliver a
   * user's delegated notification to themselves). Throws when neither may send it.
   */
  senderFor(payload: P, caller: Pick<Caller, 'userId' | 'usernames'>): Sender['kind'];
  /** One try; failures are AppErrors of the app's table (upstream_unavailable is retryable). */
  send(token: string, prepared: Prepared<P>, clientRequestId?: string): Promise<Record<string, unknown>>;
  /** The 201 body of a send, from what `send` returned. */
  sentBody(prepared: Prepared<P>, sent: Record<string, unknown>): Record<string, unknown>;
  /** The 202 body of a scheduled send. */
  scheduledBody(prepared: Prepared<P>): Record<string, unknown>;
  /** The body as a queue message carries it (`deliverAt` back in). */
  toMessageBody(prepared: Prepared<P>): Record<string, unknown>;
  /** Ids for logs and telemetry. */
  ids(prepared: Prepared<P>): TelemetryProperties;
}
