import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { startFunctionHost, type FunctionHostProcess } from '../../dev/host-process';
import { nextOccurrence } from '../../dev/host/ncrontab';
import { APP_ROOT } from '../../dev/settings';
import { buildFixtureApp, startReportServer } from '../support/fixture-app';
import { eventually } from '../support/stack';
import type { FixtureReport } from '../fixtures/timer-app/index';

// The local host's timer trigger, the host running as its own process on a fixture app, observed from the
// far side: what each function received and when (it reports over HTTP). Every-second schedules keep it short.

const FIXTURE_SOURCE = path.join(APP_ROOT, 'test', 'fixtures', 'timer-app');
// Under .local (git- and lint-ignored) so that Node still finds @azure/functions in the repository's node_modules.
const FIXTURE_APP = path.join(APP_ROOT, '.local', 'test-apps', `timer-app-${process.pid}`);
const HOST_MAIN = path.join(APP_ROOT, 'dist', 'dev', 'host', 'main.js');

const EVERY_SECOND = '*/1 * * * * *';
// Once a year: in a test it only ever runs on startup.
const YEARLY = '0 0 0 1 Jan *';
/** .NET's `default(DateTime)` as the host serialises it: Last and LastUpdated before any run. */
const NEVER_RUN = '0001-01-01T00:00:00+00:00';

let reports: FixtureReport[] = [];
let reportServer: Awaited<ReturnType<typeof startReportServer>> | undefined;
let reportUrl: string;
let host: FunctionHostProcess | undefined;

/** `eventually`, with the host's output in the failure. */
async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 15_000,
) {
  try {
    return await eventually(probe, { what, timeoutMs });
  } catch (err) {
    throw new Error(`${(err as Error).message}\nHost output:\n${host?.output() ?? ''}`);
  }
}

async function startHost(settings: Record<string, string>): Promise<FunctionHostProcess> {
  host = await startFunctionHost({
    appRoot: FIXTURE_APP,
    port: 0,
    settings: {
      FIXTURE_TICK_SCHEDULE: EVERY_SECOND,
      FIXTURE_STARTUP_SCHEDULE: YEARLY,
      FIXTURE_REPORT_URL: reportUrl,
      ...settings,
    },
  });
  return host;
}

function of(functionName: string, event: FixtureReport['event']): FixtureReport[] {
  return reports.filter((r) => r.functionName === functionName && r.event === event);
}

function indexOf(functionName: string, event: FixtureReport['event'], run: number): number {
  return reports.findIndex((r) => r.functionName === functionName && r.event === event && r.run === run);
}

/** A DateTime as the host writes it in ScheduleStatus. */
function dotNetDate(date: Date): string {
  return `${date.toISOString().replace(/\.?0*Z$/, '')}+00:00`;
}

beforeAll(async () => {
  if (!existsSync(HOST_MAIN)) throw new Error(`${HOST_MAIN} is missing: run npm run build first.`);
  buildFixtureApp(FIXTURE_SOURCE, FIXTURE_APP);
  reportServer = await startReportServer<FixtureReport>((report) => reports.push(report));
  reportUrl = reportServer.url;
});

afterEach(async () => {
  await host?.stop();
  host = undefined;
  reports = [];
});

afterAll(async () => {
  await reportServer?.close();
  rmSync(FIXTURE_APP, { recursive: true, force: true });
});

describe('local host: timer trigger', () => {
  it('runs runOnStartup once at start and an every-second schedule repeatedly, with the Timer the host sends', async () => {
    const startedAt = new Date();
    const running = await startHost({});
    // The binding says '%FIXTURE_TICK_SCHEDULE%': the host resolved it.
    expect(running.output()).toContain(`tick: timerTrigger (schedule '${EVERY_SECOND}')`);
    expect(running.output()).toContain(`startup: timerTrigger (schedule '${YEARLY}')`);

    const ticks = await waitFor('three ticks', () => {
      const ends = of('tick', 'end');
      return ends.length >= 3 ? ends : undefined;
    });
    expect(ticks.slice(0, 3).map((r) => r.run)).toEqual([1, 2, 3]);
    // Sub-minute schedules are not monitored, so the host sends no schedule status.
    for (const tick of ticks) {
      expect(tick.timer).toEqual({
        isPastDue: false,
        schedule: { adjustForDST: true },
        scheduleStatus: null,
      });
    }

    const startups = of('startup', 'start');
    expect(startups).toHaveLength(1);
    expect(startups[0]?.timer).toEqual({
      isPastDue: false,
      schedule: { adjustForDST: true },
      scheduleStatus: {
        last: NEVER_RUN,
        next: dotNetDate(nextOccurrence(YEARLY, startedAt)),
        lastUpdated: NEVER_RUN,
      },
    });
    expect(running.output()).toContain("Function 'startup' is configured to run on startup.");
  });

  it('keeps to the schedule after a run throws, and never overlaps runs of one function', async () => {
    // Run 2 throws; run 3 takes longer than the interval.
    await startHost({ FIXTURE_FAIL_RUNS: '2', FIXTURE_SLOW_RUNS: '3', FIXTURE_SLOW_MS: '2500' });
    await waitFor('run 5 of tick', () => (indexOf('tick', 'end', 5) >= 0 ? true : undefined));

    expect(indexOf('tick', 'start', 2)).toBeGreaterThanOrEqual(0);
    expect(indexOf('tick', 'end', 2)).toBe(-1);
    const output = host?.output() ?? '';
    expect(output).toMatch(/Executed 'Functions\.tick' \(Failed, .*fixture: run 2 fails as asked/);

    // Each run starts only after the previous one ended (or failed), the slow one included.
    const starts = of('tick', 'start');
    expect(starts.every((r) => r.inFlight === 1)).toBe(true);
    expect(indexOf('tick', 'start', 4)).toBeGreaterThan(indexOf('tick', 'end', 3));
    expect(starts.map((r) => r.run)).toEqual(starts.map((_, i) => i + 1));
  });

  it('waits for a running invocation when stopped', async () => {
    await startHost({
      FIXTURE_SLOW_RUNS: '1',
      FIXTURE_SLOW_MS: '1500',
      WEBSITE_TIME_ZONE: 'W. Europe Standard Time',
    });
    await waitFor('run 1 of tick to start', () => (indexOf('tick', 'start', 1) >= 0 ? true : undefined));
    const output = () => host?.output() ?? '';
    await host?.stop();
    expect(indexOf('tick', 'end', 1)).toBeGreaterThanOrEqual(0);
    expect(indexOf('tick', 'start', 2)).toBe(-1);
    expect(output()).not.toContain('still running');
    expect(output()).toContain(
      "WEBSITE_TIME_ZONE is 'W. Europe Standard Time', but the local host runs timer schedules in UTC.",
    );
  });

  it.each([
    [
      'a schedule that is neither cron nor a timespan',
      { FIXTURE_TICK_SCHEDULE: 'every minute' },
      "The 'tick' function is in error: The schedule expression 'every minute' was not recognized as a valid cron expression or timespan string",
    ],
    [
      'a cron field out of range',
      { FIXTURE_TICK_SCHEDULE: '0 0 0 * * 7' },
      "The 'tick' function is in error: The schedule expression '0 0 0 * * 7' was not recognized",
    ],
    [
      'a setting that is not there',
      { FIXTURE_STARTUP_SCHEDULE: '' },
      "The 'startup' function is in error: '%FIXTURE_STARTUP_SCHEDULE%' does not resolve to a value.",
    ],
  ])('fails to start, naming the function, on %s', async (_, settings, message) => {
    const failure = startHost(settings);
    await expect(failure).rejects.toThrow(/Function host exited with code 1/);
    await expect(failure).rejects.toThrow(message);
    expect(reports).toHaveLength(0);
  });
});
