import { randomBytes, randomUUID } from 'node:crypto';
import { resolveSettings } from './binding-expressions';
import type { RegisteredFunction, RpcTypedData, WorkerRegistry } from './core';
import { invoke, type HostLog } from './invoke';
import { NEVER, parseSchedule, type TimerSchedule } from './ncrontab';

// The timer trigger as the Functions host runs it (Microsoft.Azure.WebJobs.Extensions 5.x: TimerListener,
// TimerSchedule, TimerInfo). What it does and what it leaves out is listed in the TSDoc of `timerTriggers`.

/** TimerListener splits longer waits into steps of 24 days (a .NET timer, like Node's, tops out near 24.8). */
const MAX_TIMER_INTERVAL_MS = 24 * 86_400_000;

/** `default(DateTime)`, which the host reports as Last and LastUpdated before the first run. */
const DATETIME_DEFAULT = new Date('0001-01-01T00:00:00Z');

export interface ScheduleStatus {
  last: Date;
  next: Date;
  lastUpdated: Date;
}

export interface TimerTriggerOptions {
  registry: WorkerRegistry;
  log: HostLog;
  /** Where `%SETTING%` names in a schedule are looked up (the host's configuration). */
  env?: NodeJS.ProcessEnv;
  /** How long `stop()` waits for a running invocation before giving up on it. */
  drainTimeoutMs?: number;
}

export interface TimerTriggerInfo {
  functionName: string;
  /** The schedule after `%SETTING%` resolution. */
  schedule: string;
}

export interface TimerTriggers {
  timers: TimerTriggerInfo[];
  /** Arms every timer (and queues the `runOnStartup` invocations). */
  start(): void;
  /** Disarms every timer, then waits (bounded) for running invocations. */
  stop(): Promise<void>;
}

/** A DateTime as Newtonsoft.Json writes it for the worker (ISO 8601, `+00:00`, trailing zero fractions dropped). */
function toJsonDate(date: Date): string {
  return `${date.toISOString().replace(/\.?0*Z$/, '')}+00:00`;
}

/**
 * The trigger input the host sends the worker: TimerInfo serialised as JSON with .NET's property names
 * (`@azure/functions` camel-cases them into its `Timer`). `ScheduleStatus` is null unless the schedule is
 * monitored, as in TimerListener.InvokeJobFunction.
 */
export function toTimerInput(
  schedule: TimerSchedule,
  status: ScheduleStatus | undefined,
  isPastDue: boolean,
): RpcTypedData {
  return {
    json: JSON.stringify({
      Schedule: { AdjustForDST: schedule.adjustForDst },
      ScheduleStatus: status
        ? {
            Last: toJsonDate(status.last),
            Next: toJsonDate(status.next),
            LastUpdated: toJsonDate(status.lastUpdated),
          }
        : null,
      IsPastDue: isPastDue,
    }),
  };
}

/**
 * TimerSchedule.Create: `useMonitor` (true unless the binding says false) is turned off for schedules that
 * fire more than once a minute, a constant interval under a minute or a cron whose fields above seconds are
 * all wildcards with two occurrences in the next minute.
 */
export function monitorsSchedule(useMonitor: unknown, schedule: TimerSchedule, now: Date): boolean {
  if (useMonitor === false) return false;
  return !schedule.firesMoreThanOncePerMinute(now);
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message.split('\n')[0]! : String(err);
}

class TimerListener {
  private status: ScheduleStatus | undefined;
  private handle: NodeJS.Timeout | undefined;
  private remainingMs = 0;
  private startupPending: boolean;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(
    readonly fn: RegisteredFunction,
    private readonly triggerName: string,
    readonly scheduleText: string,
    private readonly schedule: TimerSchedule,
    private readonly monitor: boolean,
    runOnStartup: boolean,
    private readonly log: HostLog,
    private readonly registry: WorkerRegistry,
  ) {
    this.startupPending = runOnStartup;
  }

  get name(): string {
    return this.fn.metadata.name;
  }

  start(): void {
    const now = new Date();
    this.status = { last: DATETIME_DEFAULT, next: this.schedule.next(now), lastUpdated: DATETIME_DEFAULT };
    const upcoming: string[] = [];
    for (let at = now, i = 0; i < 5; i++) {
      at = this.schedule.next(at);
      if (at.getTime() >= NEVER.getTime()) break;
      upcoming.push(at.toISOString());
    }
    this.log(
      'information',
      `The next ${upcoming.length} occurrences of the '${this.name}' schedule (${this.schedule.toString()}) will be:` +
        upcoming.map((u) => `\n  ${u}`).join(''),
    );
    if (this.startupPending) {
      // Like the host: not from start itself, but as an immediate timer, so the start is not held up.
      this.arm(1);
    } else {
      this.armForNext();
    }
  }

  async stop(drainTimeoutMs: number): Promise<void> {
    this.stopped = true;
    clearTimeout(this.handle);
    if (!this.running) return;
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), drainTimeoutMs);
    });
    const outcome = await Promise.race([this.running.then(() => 'drained' as const), bound]);
    clearTimeout(timer);
    if (outcome === 'timeout') {
      this.log(
        'warning',
        `Timer '${this.name}': its invocation is still running after ${drainTimeoutMs} ms; stopping anyway.`,
      );
    }
  }

  private armForNext(): void {
    const next = this.status!.next;
    if (next.getTime() >= NEVER.getTime()) {
      this.log('warning', `Timer '${this.name}' (${this.schedule.toString()}) has no further occurrence.`);
      return;
    }
    // TimerListener.GetNextTimerInterval: from the time now, so a late or long run does not push the
    // schedule back; an occurrence already due fires at once.
    this.arm(next.getTime() - Date.now());
  }

  private arm(delayMs: number): void {
    if (this.stopped) return;
    const step = Math.min(Math.max(delayMs, 1), MAX_TIMER_INTERVAL_MS);
    this.remainingMs = delayMs - step;
    this.handle = setTimeout(() => this.onTimer(), step);
  }

  private onTimer(): void {
    if (this.remainingMs > 0) {
      this.arm(this.remainingMs);
      return;
    }
    const runOnStartup = this.startupPending;
    this.startupPending = false;
    // One timer per function, re-armed only once its invocation has finished: invocations of one timer
    // function never overlap. An occurrence that passes while one runs fires once right after it, and
    // any further ones that passed are skipped (Next is computed from when the run started).
    this.running = this.fire(runOnStartup)
      .catch((err: unknown) =>
        // Whatever went wrong, the schedule goes on, as in TimerListener.HandleTimerEvent.
        this.log('error', `Error occurred during scheduled invocation for '${this.name}': ${describe(err)}`),
      )
      .finally(() => {
        this.running = undefined;
        this.armForNext();
      });
  }

  private async fire(runOnStartup: boolean): Promise<void> {
    if (this.stopped) return;
    const invocationTime = new Date();
    if (runOnStartup)
      this.log('information', `Function '${this.name}' is configured to run on startup. Executing now.`);
    const status = this.status!;
    // A failed invocation is logged by `invoke` ("Executed … (Failed …)") and changes nothing here.
    await invoke(this.registry, this.fn, {
      invocationId: randomUUID(),
      input: {
        name: this.triggerName,
        data: toTimerInput(this.schedule, this.monitor ? status : undefined, false),
      },
      // `@azure/functions` ignores trigger metadata for timer triggers: the Timer object carries it all.
      triggerMetadata: {},
      traceParent: `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01`,
      log: this.log,
    });
    // TimerListener: a timer that fired a little before its occurrence counts from the occurrence, so the
    // same Next is never computed twice.
    const from =
      !runOnStartup && status.next.getTime() > invocationTime.getTime() ? status.next : invocationTime;
    this.status = { last: from, next: this.schedule.next(from), lastUpdated: from };
  }
}

/**
 * Runs every registered `timerTrigger` function on its schedule, through the app's programming model, as the
 * Functions host does:
 * - `schedule`: `%SETTING%` names resolved, then NCrontab (six fields, or five without seconds) or a TimeSpan
 *   (see ncrontab.ts). A schedule that is not valid throws here, naming the function, so the local host
 *   fails at start (the real host would only put that function in error and run the rest; locally a
 *   loud stop is more useful).
 * - times are UTC. WEBSITE_TIME_ZONE (which the real host honours on some plans) is not applied; a warning
 *   says so when it is set.
 * - `runOnStartup: true` invokes the function once right after start, with `isPastDue` false.
 * - one timer per function, re-armed after each invocation: no overlap; an error is logged and the next
 *   occurrence still fires.
 * - `useMonitor`: the real host records the schedule status in blob storage (`timers/…/status`) so that
 *   after a restart it can tell a missed occurrence and run it with `isPastDue` true. The local host keeps
 *   the status in memory only, so nothing is ever past due here; the function still gets the host's
 *   `scheduleStatus` when the schedule is monitored (null otherwise, as in Azure).
 * Side effects: invocations of the app's functions.
 */
export function timerTriggers(options: TimerTriggerOptions): TimerTriggers {
  const env = options.env ?? process.env;
  const listeners: TimerListener[] = [];
  for (const fn of options.registry.functions) {
    const [triggerName, binding] = options.registry.triggerOf(fn);
    if (binding.type.toLowerCase() !== 'timertrigger') continue;
    let scheduleText: string;
    let schedule: TimerSchedule;
    try {
      if (typeof binding.schedule !== 'string' || binding.schedule.trim() === '')
        throw new Error('its timerTrigger binding has no schedule.');
      scheduleText = resolveSettings(binding.schedule, env);
      schedule = parseSchedule(scheduleText);
    } catch (err) {
      throw new Error(`The '${fn.metadata.name}' function is in error: ${describe(err)}`);
    }
    listeners.push(
      new TimerListener(
        fn,
        triggerName,
        scheduleText,
        schedule,
        monitorsSchedule(binding.useMonitor, schedule, new Date()),
        binding.runOnStartup === true,
        options.log,
        options.registry,
      ),
    );
  }
  const timeZone = env.WEBSITE_TIME_ZONE;
  if (listeners.length > 0 && timeZone && !/^(utc|gmt|etc\/utc)$/i.test(timeZone)) {
    options.log(
      'warning',
      `WEBSITE_TIME_ZONE is '${timeZone}', but the local host runs timer schedules in UTC.`,
    );
  }
  return {
    timers: listeners.map((l) => ({ functionName: l.name, schedule: l.scheduleText })),
    start: () => {
      for (const listener of listeners) listener.start();
    },
    stop: async () => {
      await Promise.all(listeners.map((l) => l.stop(options.drainTimeoutMs ?? 30_000)));
    },
  };
}
