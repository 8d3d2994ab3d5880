// `npm run bench`: what one instance of the app delivers, what it costs upstream, and how close it
// is to the limit — measured side by side with the sample's design and the floor, in one run, on
// this machine. Loopback only; bounded in requests and time; stops by itself.
//
// Layout: the stand-ins (Entra ID, Key Vault, Graph, with injected latency) and the load generator
// run in this process; Azurite, the local Functions host (the app), and the two baseline servers
// each run in their own. See docs/performance.md for what the figures mean.
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startFunctionHost, type FunctionHostProcess } from '../dev/host-process';
import { APP_ROOT } from '../dev/root';
import { startLocalStack, type LocalStack } from '../dev/stack';
import { devUser } from '../dev/standins/identities';
import { parseArgs, type BenchArgs } from './args';
import { measureColdStart } from './cold-start';
import { measureDrain, measureDrainFloor } from './drain';
import { prepareFloorApp } from './floor';
import { measureFirstResponse } from './first-response';
import { round } from './load';
import { measureMemory } from './memory';
import { profileSendNow } from './profile';
import { measureDesign, startBaselineServer, type SendNowRow } from './send-now';
import { startTableMeter } from './table-meter';
import { measureLedgerCost } from './ledger-cost';
import { formatJson, renderTable, type ReportInput } from './report';
import { measureTeams } from './teams';

/** Everything the JSON file holds: what the table shows, plus when and with what it was made. */
interface Results extends ReportInput {
  startedAt: string;
  durationSeconds: number;
  machine: ReportInput['machine'] & { totalMemoryGb: number; platform: string };
  parameters: Omit<BenchArgs, 'only' | 'out'> & { only: string[] };
}

// Settings of the developer's shell or local.settings.json must not leak into the run.
const PASSTHROUGH = ['PATH', 'HOME', 'TMPDIR', 'TEMP', 'TMP', 'SystemRoot', 'LANG'];

function log(line: string): void {
  console.log(line);
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const began = performance.now();
  const cpus = os.cpus();
  const results: Results = {
    command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
    startedAt: new Date().toISOString(),
    durationSeconds: 0,
    machine: {
      cpus: cpus.length,
      cpuModel: cpus[0]?.model ?? 'unknown',
      totalMemoryGb: round(os.totalmem() / 2 ** 30, 1),
      node: process.version,
      platform: `${os.platform()} ${os.release()}`,
    },
    parameters: { ...args, only: [...args.only] },
    sendNow: [],
    comparison: [],
    profile: undefined,
    drain: undefined,
    drainFloor: undefined,
    coldStart: [],
    firstResponse: undefined,
    memory: undefined,
    teams: undefined,
    ledger: undefined,
  };
  log(
    `graph-notify benchmark${args.quick ? ' (--quick)' : ''}: ${cpus.length} cores (${results.machine.cpuModel}), ` +
      `Node ${process.version}; latency identity ${args.latencyMs.entra} ms, Graph ${args.latencyMs.graph} ms, ` +
      `Key Vault ${args.latencyMs.keyVault} ms`,
  );

  const base: Record<string, string> = {};
  for (const key of PASSTHROUGH) if (process.env[key]) base[key] = process.env[key];
  const stack: LocalStack = await startLocalStack({
    settings: base,
    ports: 'free',
    latencyMs: args.latencyMs,
  });
  const hosts: FunctionHostProcess[] = [];
  let stopMeter = (): Promise<void> => Promise.resolve();
  const stopAll = async (): Promise<void> => {
    for (const h of hosts) await h.stop().catch(() => undefined);
    await stopMeter();
    await stack.stop();
  };
  try {
    // The host's own per-invocation lines are written by the real host in its own process, not the
    // worker's: silenced here so they are not charged to the app (its own logs stay).
    // The delivery ledger's table requests are counted and timed on their way to Azurite.
    const table = await startTableMeter(stack.settings.AzureWebJobsStorage!);
    stopMeter = () => table.stop();
    const hostSettings = {
      ...stack.settings,
      AzureWebJobsStorage: table.connectionString,
      LOCAL_HOST_LOG_LEVEL: 'warning',
    };
    let host = await startFunctionHost({ settings: hostSettings, port: 0 });
    hosts.push(host);
    const floorApp = prepareFloorApp();

    if (args.only.has('send') || args.only.has('profile')) {
      log(
        `\n[1-2] send now: ${args.users} users, each reusing its token; ${args.requests} measured requests per row`,
      );
      const users = Array.from({ length: args.users }, (_, i) => devUser(`bench-user-${i}`));
      const tokens = await Promise.all(users.map((u) => stack.entra!.issueUserToken({ user: u.oid })));
      const sample = await startBaselineServer('sample', stack);
      const floor = await startBaselineServer('floor', stack);
      try {
        for (const token of tokens) {
          const res = await fetch(`${floor.url}/prepare`, {
            method: 'POST',
            headers: { authorization: `Bearer ${token}` },
          });
          if (res.status !== 204) throw new Error(`floor: preparing a Graph token answered ${res.status}`);
        }
        const urls = {
          app: `${host.url}/api/notifications`,
          sample: `${sample.url}/notify`,
          floor: `${floor.url}/notify`,
        };
        for (const concurrency of args.only.has('send') ? args.concurrencies : []) {
          const rows: Partial<Record<keyof typeof urls, SendNowRow>> = {};
          for (const design of ['app', 'sample', 'floor'] as const) {
            const row = await measureDesign({
              design,
              url: urls[design],
              tokens,
              stack,
              concurrency,
              requests: args.requests,
              warmup: args.warmup,
              table,
            });
            rows[design] = row;
            results.sendNow.push(row);
            log(
              `  ${design.padEnd(6)} c=${String(concurrency).padEnd(3)} ${String(row.perSecond).padStart(7)} /s  ` +
                `p50 ${row.p50Ms} p95 ${row.p95Ms} p99 ${row.p99Ms} ms  identity ${row.identityCallsPerNotification}/n  ` +
                `vault ${row.keyVaultOpsPerNotification}/n  table ${row.tableOpsPerNotification}/n ` +
                `(${row.tableWritesPerNotification} writes, ${row.tableMsPerNotification} ms)  failed ${row.failed}`,
            );
          }
          const { app, sample: b, floor: c } = rows as Record<keyof typeof urls, SendNowRow>;
          results.comparison.push({
            concurrency,
            throughputAppOverSample: round(app.perSecond / b.perSecond, 2),
            throughputAppOverFloor: round(app.perSecond / c.perSecond, 2),
            p50AppOverSample: round(app.p50Ms / b.p50Ms, 2),
            p50AppOverFloor: round(app.p50Ms / c.p50Ms, 2),
            appOverheadP50Ms: round(app.p50Ms - c.p50Ms, 1),
          });
        }
      } finally {
        await sample.stop();
        await floor.stop();
      }
      if (args.only.has('profile')) {
        log(
          `\n[2b] the app's CPU at concurrency 64: a host of its own with the CPU profiler on, ${args.requests} requests`,
        );
        const p = await profileSendNow({
          settings: hostSettings,
          tokens,
          concurrency: 64,
          requests: args.requests,
        });
        results.profile = p;
        log(
          `  ${p.cpuMsPerRequest} ms of host CPU per request (host busy ${Math.round(p.busyShare * 100)} % of the window)`,
        );
        for (const row of p.byPackage.slice(0, 8))
          log(
            `    ${row.what.padEnd(34)} ${String(row.perRequestMs).padStart(6)} ms/req  ${Math.round(row.share * 100)} %`,
          );
      }
    }

    // Before the drain: on this machine a Teams backlog run after the 2,000-message drain saw the
    // host's storage calls stall for 12-63 s at a time (Azurite, with or without the ledger), which
    // measures Azurite, not the pacing.
    if (args.only.has('teams')) {
      const t = args.teams;
      log(
        `\n[6] Teams backlog: ${t.messages} messages for one tenant from ${t.senders} senders, ` +
          `TEAMS_MAX_RPS_PER_TENANT ${t.perSecond} (the stand-in answers 429 beyond ${t.perSecond}/s), fresh host`,
      );
      const { row, host: teamsHost } = await measureTeams({
        stack,
        host,
        settings: hostSettings,
        senders: t.senders,
        recipients: t.recipients,
        messages: t.messages,
        perSecond: t.perSecond,
        graphLatencyMs: args.latencyMs.graph,
      });
      host = teamsHost;
      hosts.push(host);
      results.teams = row;
      log(
        `  ${row.sendsPerSecond} sends/s (steady ${row.steadyPerSecond}/s) of ${row.allowedPerSecond}/s allowed → ` +
          `${Math.round(row.ofAllowed * 100)} %; drained in ${row.drainSeconds} s (floor ${row.floorSeconds} s); ` +
          `429s ${row.throttled429}; max ${row.maxInOneSecond} in 1 s; put back ${row.putBacks} times ` +
          `(${row.invocations} invocations); delivered ${row.delivered}, distinct ${row.distinct}, poisoned ${row.poisoned}`,
      );
    }
    if (args.only.has('drain')) {
      log(`\n[3] deferred drain: ${args.drain.messages} messages over ${args.drain.users} users, fresh host`);
      const { row, host: drainHost } = await measureDrain({
        stack,
        host,
        settings: hostSettings,
        users: args.drain.users,
        messages: args.drain.messages,
        graphLatencyMs: args.latencyMs.graph,
        table,
      });
      host = drainHost;
      hosts.push(host);
      results.drain = row;
      const floorRow = await measureDrainFloor({
        stack,
        settings: hostSettings,
        floorApp,
        messages: args.drain.messages,
        app: row,
      });
      results.drainFloor = floorRow;
      log(
        `  ${row.messagesPerSecond} msg/s (steady ${row.steadyPerSecond}/s), drained in ${row.drainSeconds} s; ceiling ` +
          `${row.ceilingPerSecond}/s (${row.maxConcurrentInvocations} invocations / ${row.graphLatencyMs} ms) → ` +
          `${Math.round(row.ofCeiling * 100)} %; refreshes ${row.refreshesPerMessage}/msg, vault reads ${row.vaultReadsPerMessage}/msg, ` +
          `table ${row.tableOpsPerMessage}/msg (${row.tableWritesPerMessage} writes, ${row.tableMsPerMessage} ms)`,
      );
      log(
        `  floor function: ${floorRow.messagesPerSecond} msg/s (steady ${floorRow.steadyPerSecond}/s) → app ${floorRow.appOverFloor}× ` +
          `(steady ${floorRow.appSteadyOverFloorSteady}×); floor's Graph POST ${floorRow.graphMsMean} ms, in flight ` +
          `${floorRow.meanInFlight} (max ${floorRow.maxInFlight}); Azurite alone ${floorRow.azuriteOnlyPerSecond} msg/s`,
      );
    }

    for (const h of hosts) await h.stop().catch(() => undefined);

    if (args.only.has('ledger')) {
      log(`\n[7] the delivery ledger's own cost: 2,000 operations at concurrency 16, through shared/ledger`);
      const row = await measureLedgerCost({
        connectionString: stack.settings.AzureWebJobsStorage!,
        operations: 2000,
        concurrency: 16,
      });
      results.ledger = row;
      log(
        `  send now (one write): ${row.sendNowCpuMsPerOp} ms CPU, ${row.sendNowMsPerOp} ms each; ` +
          `queued message (claim + sent): ${row.queuedCpuMsPerMessage} ms CPU, ${row.queuedMsPerMessage} ms`,
      );
    }

    if (args.only.has('cold')) {
      log(`\n[4] cold start: median of ${args.coldStartRuns} fresh processes each`);
      results.coldStart = await measureColdStart(stack.settings, args.coldStartRuns);
      for (const row of results.coldStart) {
        log(
          `  ${row.what.padEnd(22)} load ${row.loadMsMedian} ms  RSS ${row.rssMbMedian} MB  process ${row.processMsMedian} ms` +
            `${row.refusedConnections.length ? `  REFUSED: ${row.refusedConnections.join(', ')}` : ''}${row.note ? `  (${row.note})` : ''}`,
        );
      }
      log(
        `  spawn → first 201 for a new user, against the floor function: ${args.firstResponseRuns} host starts each`,
      );
      results.firstResponse = await measureFirstResponse({
        stack,
        settings: hostSettings,
        floorApp,
        runs: args.firstResponseRuns,
      });
      for (const row of results.firstResponse.rows) {
        log(
          `  ${row.what.padEnd(22)} spawn→201 ${row.spawnTo201MsMedian} ms (spawn→listening ${row.spawnToListeningMsMedian}, ` +
            `listening→201 ${row.listeningTo201MsMedian})`,
        );
      }
      log(`  app − floor: ${results.firstResponse.appOverFloorMs} ms`);
    }

    if (args.only.has('memory')) {
      log(
        `\n[5] memory: ${args.memoryUsers.small} then ${args.memoryUsers.large} distinct users through the token service`,
      );
      results.memory = await measureMemory({
        tls: stack.tls,
        settings: stack.settings,
        small: args.memoryUsers.small,
        large: args.memoryUsers.large,
        log,
      });
      for (const row of results.memory.rows) {
        log(
          `  ${row.label.padEnd(22)} RSS ${row.rssMb} MB  heap ${row.heapUsedMb} MB  partitions ${row.partitions}`,
        );
      }
    }
  } finally {
    await stopAll();
  }

  results.durationSeconds = round((performance.now() - began) / 1000, 1);
  const out =
    args.out ??
    (args.quick
      ? path.join(APP_ROOT, '.local', 'bench', 'results.quick.json')
      : path.join(APP_ROOT, 'bench', 'results.json'));
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, await formatJson(results));
  log(
    `\n${renderTable(results)}\nWritten to ${path.relative(APP_ROOT, out)} in ${results.durationSeconds} s.`,
  );
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exit(1);
});
