// Section 6: a Teams backlog for one tenant, drained by a fresh host under the per-tenant pacing
// (TEAMS_MAX_RPS_PER_TENANT) against a Graph stand-in that answers 429 beyond the same rate, as
// Graph does beyond 5 requests per second per app per tenant on sendActivityNotification.
import { startFunctionHost, type FunctionHostProcess } from '../dev/host-process';
import { readHostJson } from '../dev/settings';
import type { LocalStack } from '../dev/stack';
import { devUser } from '../dev/standins/identities';
import { enqueueDeferredNotification } from '../shared/queue/enqueue';
import { registerAndEmptyQueues } from './backlog';
import { round, runClosedLoop } from './load';

export interface TeamsRow {
  messages: number;
  senders: number;
  recipients: number;
  /** TEAMS_MAX_RPS_PER_TENANT given to the host, and the stand-in's rate before 429. */
  allowedPerSecond: number;
  graphLatencyMs: number;
  /** messages ÷ allowed rate: the shortest drain the budget permits. */
  floorSeconds: number;
  /** From the host being ready to every activity delivered and the queue empty. */
  drainSeconds: number;
  /** Teams sends (204) per second over the drain. */
  sendsPerSecond: number;
  /** First to last 204: the rate once the backlog is spread over the coming seconds. */
  steadyPerSecond: number;
  ofAllowed: number;
  steadyOfAllowed: number;
  /** The most 204s the stand-in admitted in any one-second window (must not exceed the allowed rate). */
  maxInOneSecond: number;
  /** Requests the stand-in answered 429. */
  throttled429: number;
  /** Every request the Teams endpoint saw. */
  teamsRequests: number;
  /** Function invocations of the queue trigger (the host's "completed" log lines). */
  invocations: number;
  /**
   * Invocations that neither sent nor gave up: messages put back on the queue by the pacer (or for a
   * retry after a 429 / 5xx) — invocations minus sends, minus poisoned.
   */
  putBacks: number;
  putBacksPerMessage: number;
  /** Feed items the stand-in holds after the drain, and how many distinct bench messages they carry. */
  delivered: number;
  distinct: number;
  /** Feed items beyond one per message: a message sent twice (no chainId, so each send is an item). */
  duplicates: number;
  poisoned: number;
  /**
   * For each 429: by how many ms the request came too early — 1000 minus the time since the admitted
   * request `allowed` places before it (the one whose second it fell into). Largest first, at most 20.
   */
  earlyBy429Ms: number[];
  /** 204s and 429s in each second from the host being ready (index = second). */
  timeline: { sent: number[]; throttled: number[] };
  /** When a message was delivered twice: the host's log lines naming it (by correlation id), at most 40. */
  duplicateEvidence: string[];
  maxPollingIntervalMs: number;
  visibilityTimeoutMs: number;
}

/** The host's line for every settled invocation (dev/host/queue.ts), success or failure. */
const SETTLED = /Queue message \S+ on '[^']+' \(DequeueCount=\d+\): (completed|failed)/g;

export async function measureTeams(options: {
  stack: LocalStack;
  /** A running host of the app, to register the senders through (stopped before the drain). */
  host: FunctionHostProcess;
  settings: Record<string, string>;
  senders: number;
  recipients: number;
  messages: number;
  perSecond: number;
  graphLatencyMs: number;
}): Promise<{ row: TeamsRow; host: FunctionHostProcess }> {
  const { stack } = options;
  const graph = stack.graph!;
  const senders = Array.from({ length: options.senders }, (_, i) => devUser(`bench-teams-sender-${i}`));
  // Recipients in the stand-in's directory with the Teams app installed, all in the senders' tenant.
  const recipients = Array.from({ length: options.recipients }, (_, i) =>
    graph.addTeamsUser(`bench-teams-recipient-${i}`, { installed: true }),
  );
  const tenantId = senders[0]!.tid;
  if (recipients.some((r) => r.tid !== tenantId) || senders.some((s) => s.tid !== tenantId))
    throw new Error('teams: senders and recipients must share one tenant');

  const { queue, poison } = await registerAndEmptyQueues({
    stack,
    host: options.host,
    settings: options.settings,
    users: senders,
    concurrency: 5,
  });
  const marker = (n: number): string => `bench-teams-${n}`;
  const enqueued = await runClosedLoop({
    count: options.messages,
    concurrency: 32,
    expectStatus: 0,
    send: async (n) => {
      const sender = senders[n % senders.length]!;
      const recipient = recipients[n % recipients.length]!;
      await enqueueDeferredNotification(queue, {
        channel: 'teams',
        userId: sender.oid,
        tenantId: sender.tid,
        activity: {
          recipient: { userId: recipient.oid },
          activityType: 'systemDefault',
          templateParameters: [{ name: 'systemDefaultText', value: 'approved your expense report' }],
          previewText: { content: marker(n) },
          topic: {
            source: 'text',
            value: `Expense ${n}`,
            webUrl: `https://teams.microsoft.com/l/entity/bench/${n}`,
          },
        },
        correlationId: marker(n),
      });
      return 0;
    },
  });
  if (enqueued.failed > 0) throw new Error(`enqueueing failed: ${JSON.stringify(enqueued.failures)}`);

  graph.reset();
  const previousRate = graph.teamsRatePerSecond;
  graph.teamsRatePerSecond = options.perSecond;
  // The host's per-invocation lines stay on here: they are how invocations (and so put-backs, which
  // the app does not log) are counted. At 5 sends per second they cost the host nothing that shows.
  const { LOCAL_HOST_LOG_LEVEL: _quiet, ...hostSettings } = options.settings;
  const host = await startFunctionHost({
    settings: { ...hostSettings, TEAMS_MAX_RPS_PER_TENANT: String(options.perSecond) },
    port: 0,
  });
  try {
    const started = Date.now();
    const floorSeconds = options.messages / options.perSecond;
    const limitMs = (floorSeconds * 3 + 60) * 1000;
    const delivered204 = (): number => graph.teamsAttempts.filter((a) => a.status === 204).length;
    for (;;) {
      const sent = delivered204();
      if (sent >= options.messages && ((await queue.getProperties()).approximateMessagesCount ?? 0) === 0)
        break;
      if (Date.now() - started > limitMs) {
        if (process.env.BENCH_SHOW_HOST) console.error(host.output());
        throw new Error(`teams: drain did not finish in ${limitMs / 1000} s (${sent} sent)`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const drainSeconds = (Date.now() - started) / 1000;
    const attempts = graph.teamsAttempts;
    const ok = attempts.filter((a) => a.status === 204);
    const times = ok.map((a) => Date.parse(a.at)).sort((a, b) => a - b);
    const steadySeconds = (times[times.length - 1]! - times[0]!) / 1000;
    let maxInOneSecond = 0;
    for (let i = 0, j = 0; i < times.length; i++) {
      while (times[i]! - times[j]! >= 1000) j++;
      maxInOneSecond = Math.max(maxInOneSecond, i - j + 1);
    }
    // The stand-in admits by its own clock, a little after `at` (body read, token verified): close enough.
    const admitted: number[] = [];
    const earlyBy: number[] = [];
    for (const a of [...attempts].sort((x, y) => Date.parse(x.at) - Date.parse(y.at))) {
      const at = Date.parse(a.at);
      if (a.status === 204) admitted.push(at);
      else if (a.status === 429 && admitted.length >= options.perSecond)
        earlyBy.push(1000 - (at - admitted[admitted.length - options.perSecond]!));
    }
    const perSecondOf = (status: number): number[] => {
      const counts: number[] = [];
      for (const a of attempts) {
        if (a.status !== status) continue;
        const second = Math.max(0, Math.floor((Date.parse(a.at) - started) / 1000));
        while (counts.length <= second) counts.push(0);
        counts[second]!++;
      }
      return counts;
    };
    const feed = graph.activities();
    const seen = new Map<string, number>();
    for (const a of feed) seen.set(a.previewText ?? '', (seen.get(a.previewText ?? '') ?? 0) + 1);
    const twice = [...seen].filter(([, count]) => count > 1).map(([m]) => m);
    const markers = new Set(feed.map((a) => a.previewText));
    const poisoned = (await poison.getProperties()).approximateMessagesCount ?? 0;
    // Give the host a moment to write the last invocation's line before counting.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const invocations = [...host.output().matchAll(SETTLED)].length;
    const putBacks = invocations - ok.length - poisoned;
    const hostJson = readHostJson().queues;
    const n = options.messages;
    const sendsPerSecond = n / drainSeconds;
    const steady = (n - 1) / steadySeconds;
    return {
      host,
      row: {
        messages: n,
        senders: options.senders,
        recipients: options.recipients,
        allowedPerSecond: options.perSecond,
        graphLatencyMs: options.graphLatencyMs,
        floorSeconds: round(floorSeconds, 1),
        drainSeconds: round(drainSeconds, 2),
        sendsPerSecond: round(sendsPerSecond, 2),
        steadyPerSecond: round(steady, 2),
        ofAllowed: round(sendsPerSecond / options.perSecond, 3),
        steadyOfAllowed: round(steady / options.perSecond, 3),
        maxInOneSecond,
        throttled429: attempts.filter((a) => a.status === 429).length,
        teamsRequests: attempts.length,
        invocations,
        putBacks,
        putBacksPerMessage: round(putBacks / n, 2),
        delivered: feed.length,
        distinct: [...markers].filter((m) => m?.startsWith('bench-teams-')).length,
        duplicates: feed.length - markers.size,
        poisoned,
        earlyBy429Ms: earlyBy.sort((a, b) => b - a).slice(0, 20),
        timeline: { sent: perSecondOf(204), throttled: perSecondOf(429) },
        duplicateEvidence: host
          .output()
          .split('\n')
          .filter((line) => twice.some((m) => new RegExp(`${m}(?!\\d)`).test(line)))
          .slice(0, 40),
        maxPollingIntervalMs: hostJson.maxPollingIntervalMs,
        visibilityTimeoutMs: hostJson.visibilityTimeoutMs,
      },
    };
  } catch (err) {
    await host.stop().catch(() => undefined);
    throw err;
  } finally {
    graph.teamsRatePerSecond = previousRate;
  }
}
