// A timer trigger's `schedule` as the Functions host reads it (Microsoft.Azure.WebJobs.Extensions 5.x,
// TimerSchedule.Create): first as an NCrontab expression, then as a .NET TimeSpan (a constant interval),
// else the function is in error. NCrontab's rules, which differ from Unix cron in places:
// - five fields (minute hour day month day-of-week) or six with seconds first; the host counts the fields
//   split on spaces only (a tab is not a separator) and asks for seconds unless there are exactly five;
// - each field is `*`, a value, a range `a-b` (a reversed range is swapped, not rejected), a step `*/n`,
//   `a/n` (a to the field's maximum) or `a-b/n`, or a comma list of those; a step below 1 counts as 1;
// - month and day-of-week names match by case-insensitive prefix (`Jan`, `January`, `ju` = June); day of
//   week is 0-6 with Sunday 0, and 7 is out of range;
// - day of month AND day of week must both match (Unix cron takes either when both are restricted), so
//   `0 0 0 1 * Mon` fires only on a 1st that is a Monday;
// - a date that never comes (`0 0 0 31 2 *`) parses, and its next occurrence is DateTime.MaxValue.

/** .NET's DateTime.MaxValue, NCrontab's answer when there is no next occurrence. */
export const NEVER = new Date(Date.UTC(9999, 11, 31, 23, 59, 59, 999));

/** A parsed schedule. Times are wall-clock UTC (see timer.ts on WEBSITE_TIME_ZONE). */
export interface TimerSchedule {
  /** The first occurrence strictly after `after` (NEVER when there is none). */
  next(after: Date): Date;
  /** What the host serialises as `Schedule.AdjustForDST`: true for cron, false for a constant interval. */
  readonly adjustForDst: boolean;
  /**
   * TimerSchedule.ShouldDisableScheduleMonitor: a constant interval under a minute, or a six-field cron whose
   * fields above seconds are all wildcards and which fires twice in the minute after `now`.
   */
  firesMoreThanOncePerMinute(now: Date): boolean;
  /** The host's own description, as in its start-up log: `Cron: '…'` or `Constant: hh:mm:ss`. */
  toString(): string;
}

interface FieldKind {
  name: string;
  min: number;
  max: number;
  names?: readonly string[];
}

const SECOND: FieldKind = { name: 'Second', min: 0, max: 59 };
const MINUTE: FieldKind = { name: 'Minute', min: 0, max: 59 };
const HOUR: FieldKind = { name: 'Hour', min: 0, max: 23 };
const DAY: FieldKind = { name: 'Day', min: 1, max: 31 };
const MONTH: FieldKind = {
  name: 'Month',
  min: 1,
  max: 12,
  names: [
    'January',
    'February',
    'March',
    'April',
    'May',
    'June',
    'July',
    'August',
    'September',
    'October',
    'November',
    'December',
  ],
};
const DAY_OF_WEEK: FieldKind = {
  name: 'DayOfWeek',
  min: 0,
  max: 6,
  names: ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'],
};

class CronSyntaxError extends Error {}

/** The values a field allows, ascending. */
type Field = readonly number[];

function parseValue(kind: FieldKind, text: string): number {
  if (/^[0-9]/.test(text)) {
    // .NET's int.Parse: digits only (and it overflows past int32, which the host reports as an error too).
    if (!/^[0-9]+$/.test(text) || Number(text) > 2_147_483_647)
      throw new CronSyntaxError(`'${text}' is not a number`);
    return Number(text);
  }
  if (!kind.names) {
    throw new CronSyntaxError(
      `'${text}' is not a valid [${kind.name}] value: it must be a number from ${kind.min} to ${kind.max}`,
    );
  }
  const lower = text.toLowerCase();
  const index = kind.names.findIndex((n) => n.toLowerCase().startsWith(lower));
  if (index === -1)
    throw new CronSyntaxError(`'${text}' is not a known value name; use one of ${kind.names.join(', ')}`);
  return index + kind.min;
}

/** NCrontab's CrontabField.Accumulate: marks start..end every `step`, checking the bounds. */
function accumulate(kind: FieldKind, set: Set<number>, start: number, end: number, step: number): void {
  const outOfRange = (value: number): CronSyntaxError =>
    new CronSyntaxError(
      `${value} is out of range for the [${kind.name}] field (${kind.min} to ${kind.max}, all inclusive)`,
    );
  if (start === end) {
    if (start < kind.min || start > kind.max) throw outOfRange(start);
  } else {
    if (start > end) [start, end] = [end, start];
    if (start < kind.min) throw outOfRange(start);
    if (end > kind.max) throw outOfRange(end);
  }
  for (let v = start; v <= end; v += Math.max(step, 1)) set.add(v);
}

/** NCrontab's CrontabFieldImpl.InternalParse, one comma-separated part at a time. */
function parsePart(kind: FieldKind, set: Set<number>, part: string): void {
  if (part === '') throw new CronSyntaxError('a field value cannot be empty');
  let step: number | undefined;
  const slash = part.indexOf('/');
  if (slash > 0) {
    const every = part.slice(slash + 1);
    if (!/^[+-]?[0-9]+$/.test(every) || Math.abs(Number(every)) > 2_147_483_647)
      throw new CronSyntaxError(`'${every}' is not a step number`);
    step = Number(every);
    part = part.slice(0, slash);
  }
  if (part === '*') {
    // `*` and `*/n` are the whole range.
    for (let v = kind.min; v <= kind.max; v += Math.max(step ?? 1, 1)) set.add(v);
    return;
  }
  const dash = part.indexOf('-');
  if (dash > 0) {
    const first = parseValue(kind, part.slice(0, dash));
    const last = parseValue(kind, part.slice(dash + 1));
    accumulate(kind, set, first, last, step ?? 1);
    return;
  }
  const value = parseValue(kind, part);
  // `a/n` runs from a to the field's maximum.
  if (step === undefined) accumulate(kind, set, value, value, 1);
  else accumulate(kind, set, value, kind.max, step);
}

function parseField(kind: FieldKind, text: string): Field {
  const set = new Set<number>();
  try {
    // A leading comma is not a list separator to NCrontab: the whole text is then one (invalid) value.
    const parts = text.indexOf(',') > 0 ? text.split(',') : [text];
    for (const part of parts) parsePart(kind, set, part);
  } catch (err) {
    if (err instanceof CronSyntaxError)
      throw new CronSyntaxError(`'${text}' is not a valid [${kind.name}] field: ${err.message}`);
    throw err;
  }
  return [...set].sort((a, b) => a - b);
}

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

/** The first value of `field` at or after `from`, if any. */
function firstAtOrAfter(field: Field, from: number): number | undefined {
  return field.find((v) => v >= from);
}

class CronSchedule implements TimerSchedule {
  readonly adjustForDst = true;

  constructor(
    private readonly text: string,
    private readonly withSeconds: boolean,
    private readonly seconds: Field,
    private readonly minutes: Field,
    private readonly hours: Field,
    private readonly days: Field,
    private readonly months: Field,
    private readonly daysOfWeek: Field,
  ) {}

  next(after: Date): Date {
    // NCrontab works in whole seconds: the base's fraction is dropped, the result is strictly later.
    const base = new Date(Math.floor(after.getTime() / 1000) * 1000 + 1000);
    const startYear = base.getUTCFullYear();
    for (let year = startYear; year <= 9999; year++) {
      for (const month of this.months) {
        const sameMonth = year === startYear && month === base.getUTCMonth() + 1;
        if (year === startYear && month < base.getUTCMonth() + 1) continue;
        const lastDay = daysInMonth(year, month);
        for (const day of this.days) {
          if (day > lastDay) break;
          const sameDay = sameMonth && day === base.getUTCDate();
          if (sameMonth && day < base.getUTCDate()) continue;
          const weekday = new Date(Date.UTC(year, month - 1, day)).getUTCDay();
          if (!this.daysOfWeek.includes(weekday)) continue;
          const time: [number, number, number] | undefined = sameDay
            ? this.timeAtOrAfter(base.getUTCHours(), base.getUTCMinutes(), base.getUTCSeconds())
            : [this.hours[0]!, this.minutes[0]!, this.seconds[0]!];
          if (!time) continue;
          const [hour, minute, second] = time;
          const result = new Date(0);
          result.setUTCFullYear(year, month - 1, day);
          result.setUTCHours(hour, minute, second, 0);
          return result;
        }
      }
    }
    return NEVER;
  }

  firesMoreThanOncePerMinute(now: Date): boolean {
    const full = (field: Field, kind: FieldKind): boolean => field.length === kind.max - kind.min + 1;
    if (
      !this.withSeconds ||
      !full(this.minutes, MINUTE) ||
      !full(this.hours, HOUR) ||
      !full(this.days, DAY) ||
      !full(this.months, MONTH) ||
      !full(this.daysOfWeek, DAY_OF_WEEK)
    )
      return false;
    const end = now.getTime() + 60_000;
    const first = this.next(now);
    return first.getTime() < end && this.next(first).getTime() < end;
  }

  /** The first allowed time of day at or after h:m:s, or none that day. */
  private timeAtOrAfter(h: number, m: number, s: number): [number, number, number] | undefined {
    for (const hour of this.hours) {
      if (hour < h) continue;
      if (hour > h) return [hour, this.minutes[0]!, this.seconds[0]!];
      for (const minute of this.minutes) {
        if (minute < m) continue;
        if (minute > m) return [hour, minute, this.seconds[0]!];
        const second = firstAtOrAfter(this.seconds, s);
        if (second !== undefined) return [hour, minute, second];
      }
    }
    return undefined;
  }

  toString(): string {
    return `Cron: '${this.text}'`;
  }
}

class ConstantSchedule implements TimerSchedule {
  readonly adjustForDst = false;

  constructor(
    private readonly intervalMs: number,
    private readonly text: string,
  ) {}

  next(after: Date): Date {
    return new Date(after.getTime() + this.intervalMs);
  }

  firesMoreThanOncePerMinute(): boolean {
    return this.intervalMs < 60_000;
  }

  toString(): string {
    return `Constant: ${this.text}`;
  }
}

function parseCron(expression: string): CronSchedule {
  // Split on spaces only, as NCrontab does; empty entries dropped.
  const tokens = expression.split(' ').filter((t) => t !== '');
  const withSeconds = tokens.length !== 5;
  if (tokens.length !== (withSeconds ? 6 : 5)) {
    throw new CronSyntaxError(
      'it must have 6 fields ({second} {minute} {hour} {day} {month} {day-of-week}) or 5 (without seconds)',
    );
  }
  const kinds = withSeconds
    ? [SECOND, MINUTE, HOUR, DAY, MONTH, DAY_OF_WEEK]
    : [MINUTE, HOUR, DAY, MONTH, DAY_OF_WEEK];
  const fields = tokens.map((token, i) => parseField(kinds[i]!, token));
  const [seconds, minutes, hours, days, months, daysOfWeek] = withSeconds ? fields : [[0], ...fields];
  return new CronSchedule(
    tokens.join(' '),
    withSeconds,
    seconds!,
    minutes!,
    hours!,
    days!,
    months!,
    daysOfWeek!,
  );
}

/**
 * .NET's TimeSpan.TryParse (invariant culture): `d`, `[d.]hh:mm[:ss[.fffffff]]` or `d:hh:mm:ss[.fffffff]`,
 * optionally negative, surrounding white space ignored. Hours 0-23, minutes and seconds 0-59.
 */
export function parseTimeSpanMs(text: string): number | undefined {
  const t = text.trim();
  let match = /^(-)?([0-9]+)$/.exec(t);
  if (match) return (match[1] ? -1 : 1) * Number(match[2]) * 86_400_000;
  match =
    /^(-)?(?:([0-9]+)\.)?([0-9]+):([0-9]+)(?::([0-9]+)(?:\.([0-9]{1,7}))?)?$/.exec(t) ??
    /^(-)?([0-9]+):([0-9]+):([0-9]+):([0-9]+)(?:\.([0-9]{1,7}))?$/.exec(t);
  if (!match) return undefined;
  const [, sign, d, h, m, s, f] = match;
  const hours = Number(h);
  const minutes = Number(m);
  const seconds = Number(s ?? 0);
  if (hours > 23 || minutes > 59 || seconds > 59) return undefined;
  const ms =
    ((Number(d ?? 0) * 24 + hours) * 60 + minutes) * 60_000 +
    seconds * 1000 +
    (f ? Math.round(Number(`0.${f}`) * 1000) : 0);
  return sign ? -ms : ms;
}

/**
 * Parses a (resolved) schedule as the host does: NCrontab first, then a TimeSpan. Throws an Error naming the
 * expression, with NCrontab's reason, when it is neither. A TimeSpan of zero or less is refused too: the
 * host accepts it and then fires without pause, which is never what an app means.
 */
export function parseSchedule(expression: string): TimerSchedule {
  let cronProblem: string;
  try {
    return parseCron(expression);
  } catch (err) {
    if (!(err instanceof CronSyntaxError)) throw err;
    cronProblem = err.message;
  }
  const intervalMs = parseTimeSpanMs(expression);
  if (intervalMs === undefined) {
    throw new Error(
      `The schedule expression '${expression}' was not recognized as a valid cron expression or timespan string ` +
        `(as cron: ${cronProblem}).`,
    );
  }
  if (intervalMs <= 0)
    throw new Error(`The schedule expression '${expression}' is a timespan of zero or less.`);
  return new ConstantSchedule(intervalMs, expression.trim());
}

/** The first occurrence of `expression` strictly after `after` (NEVER when there is none). */
export function nextOccurrence(expression: string, after: Date): Date {
  return parseSchedule(expression).next(after);
}
