// The printed table — Markdown, so the same text goes into docs/performance.md — and the JSON file.
import type { ColdStartRow } from './cold-start';
import type { DrainFloorRow, DrainRow } from './drain';
import type { FirstResponseRow } from './first-response';
import type { MemoryRow } from './memory';
import type { ProfileRow } from './profile';
import type { SendNowRow } from './send-now';
import type { TeamsRow } from './teams';
import type { LedgerCostRow } from './ledger-cost';

export interface ReportInput {
  command: string;
  machine: { cpus: number; cpuModel: string; node: string };
  parameters: { latencyMs: { entra: number; keyVault: number; graph: number }; quick: boolean };
  sendNow: SendNowRow[];
  comparison: {
    concurrency: number;
    throughputAppOverSample: number;
    throughputAppOverFloor: number;
    p50AppOverSample: number;
    p50AppOverFloor: number;
    /** p50 of (a) minus p50 of (c): what the app adds per notification on top of the Graph POST. */
    appOverheadP50Ms: number;
  }[];
  profile: ProfileRow | undefined;
  drain: DrainRow | undefined;
  drainFloor: DrainFloorRow | undefined;
  coldStart: ColdStartRow[];
  firstResponse: { rows: FirstResponseRow[]; appOverFloorMs: number } | undefined;
  memory: { rows: MemoryRow[]; seconds: number } | undefined;
  teams: TeamsRow | undefined;
  ledger: LedgerCostRow | undefined;
}

function table(head: string[], rows: (string | number)[][]): string {
  const cells = [head, ...rows.map((r) => r.map(String))];
  const widths = head.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [
    line(head),
    `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`,
    ...cells.slice(1).map(line),
  ].join('\n');
}

const DESIGN = { app: '(a) this app', sample: "(b) sample's design", floor: '(c) floor: Graph POST only' };

export function renderTable(r: ReportInput): string {
  const { latencyMs } = r.parameters;
  const out: string[] = [];
  out.push(
    `Machine: ${r.machine.cpus} cores (${r.machine.cpuModel}), Node ${r.machine.node}. ` +
      `Injected latency: identity ${latencyMs.entra} ms, Graph ${latencyMs.graph} ms, Key Vault ${latencyMs.keyVault} ms. ` +
      `Command: \`${r.command}\`.`,
  );
  if (r.sendNow.length > 0) {
    const first = r.sendNow[0]!;
    out.push(
      `\n**1–2. Send now, warm** (${first.users} users, each reusing its token; ${first.count} measured requests per row after a warm-up; closed loop)\n`,
    );
    out.push(
      table(
        [
          'design',
          'concurrency',
          'notifications/s',
          'p50 ms',
          'p95 ms',
          'p99 ms',
          'identity calls/notif.',
          'Key Vault ops/notif.',
          'ledger table ops/notif. (writes, ms)',
          'failed',
        ],
        r.sendNow.map((s) => [
          DESIGN[s.design],
          s.concurrency,
          s.perSecond,
          s.p50Ms,
          s.p95Ms,
          s.p99Ms,
          s.identityCallsPerNotification,
          s.keyVaultOpsPerNotification,
          s.design === 'app'
            ? `${s.tableOpsPerNotification} (${s.tableWritesPerNotification}, ${s.tableMsPerNotification} ms)`
            : '—',
          s.failed,
        ]),
      ),
    );
    out.push('');
    out.push(
      table(
        [
          'concurrency',
          'throughput (a)/(b)',
          'throughput (a)/(c)',
          'p50 (a)/(b)',
          'p50 (a)/(c)',
          'app overhead p50 (a)−(c)',
        ],
        r.comparison.map((c) => [
          c.concurrency,
          `${c.throughputAppOverSample}×`,
          `${c.throughputAppOverFloor}×`,
          `${c.p50AppOverSample}×`,
          `${c.p50AppOverFloor}×`,
          `${c.appOverheadP50Ms} ms`,
        ]),
      ),
    );
  }
  if (r.profile) {
    const p = r.profile;
    out.push(
      `\n**2b. The app's CPU at concurrency ${p.concurrency}** (a host of its own with V8's CPU profiler, ${p.requests} requests after one per user; ` +
        `self time of the measured window by package): **${p.cpuMsPerRequest} ms of host CPU per request**, host busy ` +
        `${Math.round(p.busyShare * 100)} % of the window\n`,
    );
    out.push(
      table(
        ['charged to (Node core → its caller)', 'ms per request', 'share of host CPU'],
        p.byPackage.map((b) => [b.what, b.perRequestMs, `${Math.round(b.share * 1000) / 10} %`]),
      ),
    );
    out.push('');
    out.push(
      table(
        ['self time in (Node core by module)', 'ms per request', 'share of host CPU'],
        p.bySelf.map((b) => [b.what, b.perRequestMs, `${Math.round(b.share * 1000) / 10} %`]),
      ),
    );
  }
  if (r.drain) {
    const d = r.drain;
    out.push(
      `\n**3. Deferred drain** (${d.messages} messages over ${d.users} registered users, fresh host, Graph ${d.graphLatencyMs} ms; ` +
        `host.json batchSize ${d.batchSize}, newBatchThreshold ${d.newBatchThreshold})\n`,
    );
    out.push(
      table(
        [
          'messages/s',
          'steady messages/s',
          'time to drain',
          'ceiling',
          'of ceiling',
          'refreshes/msg',
          'vault reads/msg',
          'vault ops/msg',
          'identity calls/msg',
          'ledger table ops/msg (writes, ms)',
          'poisoned',
        ],
        [
          [
            d.messagesPerSecond,
            d.steadyPerSecond,
            `${d.drainSeconds} s`,
            `${d.ceilingPerSecond}/s (${d.maxConcurrentInvocations} ÷ ${d.graphLatencyMs} ms)`,
            `${Math.round(d.ofCeiling * 100)} %`,
            d.refreshesPerMessage,
            d.vaultReadsPerMessage,
            d.vaultOpsPerMessage,
            d.identityCallsPerMessage,
            `${d.tableOpsPerMessage} (${d.tableWritesPerMessage}, ${d.tableMsPerMessage} ms)`,
            d.poisoned,
          ],
        ],
      ),
    );
  }
  if (r.drainFloor) {
    const f = r.drainFloor;
    out.push(
      `\n**3b. Deferred drain, floor function** (the same ${f.messages} messages, host, Azurite and host.json; ` +
        `one Graph POST per message with a token it holds)\n`,
    );
    out.push(
      table(
        [
          'messages/s',
          'steady messages/s',
          'time to drain',
          'app / floor',
          'app / floor, steady',
          "floor's Graph POST ms",
          'in flight mean (max)',
          'cap at that latency',
          'Azurite alone, receive+delete',
        ],
        [
          [
            f.messagesPerSecond,
            f.steadyPerSecond,
            `${f.drainSeconds} s`,
            `${f.appOverFloor}×`,
            `${f.appSteadyOverFloorSteady}×`,
            f.graphMsMean,
            `${f.meanInFlight} (${f.maxInFlight})`,
            `${f.capAtMeasuredLatencyPerSecond}/s`,
            `${f.azuriteOnlyPerSecond}/s`,
          ],
        ],
      ),
    );
  }
  if (r.coldStart.length > 0) {
    out.push(`\n**4. Cold start** (fresh process each; median of ${r.coldStart[0]!.runs})\n`);
    out.push(
      table(
        [
          'what is loaded',
          'load ms',
          'RSS MB',
          'heap used MB',
          'process start→loaded ms',
          'functions',
          'non-loopback connections',
        ],
        r.coldStart.map((c) => [
          c.note ? `${c.what} ⁽ᵖᵉⁿᵈⁱⁿᵍ⁾` : c.what,
          c.loadMsMedian,
          c.rssMbMedian,
          c.heapUsedMbMedian,
          c.processMsMedian,
          c.functions,
          c.refusedConnections.length ? `refused: ${c.refusedConnections.join(', ')}` : 'none',
        ]),
      ),
    );
    for (const c of r.coldStart) if (c.note) out.push(`\n⁽ᵖᵉⁿᵈⁱⁿᵍ⁾ ${c.note}.`);
  }
  if (r.firstResponse) {
    const f = r.firstResponse;
    out.push(
      `\n**4b. Process start → first 201** (the local host spawned, then \`POST /api/notifications\` for a user never ` +
        `seen; median of ${f.rows[0]?.runs ?? 0}, interleaved): app − floor = **${f.appOverFloorMs} ms**\n`,
    );
    out.push(
      table(
        ['what', 'spawn→201 ms', 'spawn→listening ms', 'listening→201 ms', 'min–max ms'],
        f.rows.map((x) => [
          x.what,
          x.spawnTo201MsMedian,
          x.spawnToListeningMsMedian,
          x.listeningTo201MsMedian,
          `${x.spawnTo201MsMin}–${x.spawnTo201MsMax}`,
        ]),
      ),
    );
  }
  if (r.memory) {
    out.push(
      `\n**5. Memory under many users** (token service in its own process, RSS after GC; ${r.memory.seconds} s)\n`,
    );
    out.push(
      table(
        [
          'after',
          'RSS MB',
          'heap used MB',
          'heap total (young) MB',
          'external (ArrayBuffers) MB',
          'RSS anon / file MB',
          'sockets (handles)',
          'users held (partitions)',
          'maxPartitions',
        ],
        r.memory.rows.map((m) => [
          m.label,
          m.rssMb,
          m.heapUsedMb,
          `${m.heapTotalMb} (${m.newSpaceMb})`,
          `${m.externalMb} (${m.arrayBuffersMb})`,
          `${m.rssAnonMb} / ${m.rssFileMb}`,
          `${m.sockets} (${m.handles})`,
          m.partitions,
          m.maxPartitions,
        ]),
      ),
    );
  }
  if (r.teams) {
    const t = r.teams;
    out.push(
      `\n**6. Teams backlog, one tenant** (${t.messages} messages from ${t.senders} registered senders to ` +
        `${t.recipients} recipients, fresh host, Graph ${t.graphLatencyMs} ms; TEAMS_MAX_RPS_PER_TENANT ` +
        `${t.allowedPerSecond}, the stand-in answers 429 beyond ${t.allowedPerSecond}/s)\n`,
    );
    out.push(
      table(
        [
          'sends/s',
          'steady sends/s',
          'of allowed',
          'time to drain',
          'floor',
          'max in 1 s',
          '429s',
          'put back',
          'delivered',
          'distinct',
          'poisoned',
        ],
        [
          [
            t.sendsPerSecond,
            t.steadyPerSecond,
            `${Math.round(t.ofAllowed * 100)} % (steady ${Math.round(t.steadyOfAllowed * 100)} %)`,
            `${t.drainSeconds} s`,
            `${t.floorSeconds} s`,
            t.maxInOneSecond,
            t.throttled429,
            `${t.putBacks} (${t.putBacksPerMessage}/msg)`,
            t.delivered,
            t.distinct,
            t.poisoned,
          ],
        ],
      ),
    );
  }
  if (r.ledger) {
    const l = r.ledger;
    out.push(
      `\n**7. The delivery ledger's own cost** (${l.operations} operations at concurrency ${l.concurrency} ` +
        `through shared/ledger against the same Azurite; CPU of the calling process only)\n`,
    );
    out.push(
      table(
        ['operation', 'table requests', 'CPU ms', 'ms each'],
        [
          ['send now: its one write', 1, l.sendNowCpuMsPerOp, l.sendNowMsPerOp],
          ['queued message: claim + sent', 2, l.queuedCpuMsPerMessage, l.queuedMsPerMessage],
        ],
      ),
    );
  }
  return out.join('\n');
}

/** JSON as prettier writes it, so the committed file passes `prettier --check`. */
export async function formatJson(value: unknown): Promise<string> {
  const text = `${JSON.stringify(value, null, 2)}\n`;
  try {
    const prettier = await import('prettier');
    return await prettier.format(text, { parser: 'json', printWidth: 110 });
  } catch {
    return text;
  }
}
