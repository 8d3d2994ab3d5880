import { NEVER, nextOccurrence, parseSchedule, parseTimeSpanMs } from '../../dev/host/ncrontab';
import { monitorsSchedule, toTimerInput } from '../../dev/host/timer';

// Schedules as the Functions host reads them (NCrontab, then a .NET TimeSpan). Many cases are NCrontab's
// own test vectors (CrontabScheduleTests), written here as UTC instants.

/** `yyyy-mm-dd hh:mm:ss` as a UTC instant. */
function at(text: string): Date {
  return new Date(`${text.replace(' ', 'T')}Z`);
}

function next(expression: string, after: string): string {
  return nextOccurrence(expression, at(after))
    .toISOString()
    .replace('T', ' ')
    .replace(/\.000Z$/, '');
}

/** The first `count` occurrences after `after`. */
function series(expression: string, after: string, count: number): string[] {
  const schedule = parseSchedule(expression);
  const result: string[] = [];
  for (let t = at(after), i = 0; i < count; i++) {
    t = schedule.next(t);
    result.push(
      t
        .toISOString()
        .replace('T', ' ')
        .replace(/\.000Z$/, ''),
    );
  }
  return result;
}

describe('NCRONTAB: fields and forms', () => {
  it.each([
    // six fields, seconds first
    ['*/1 * * * * *', '2026-12-02 00:00:00', '2026-12-02 00:00:01'],
    ['45 * * * * *', '2003-01-01 00:00:00', '2003-01-01 00:00:45'],
    ['45-47,48,49 * * * * *', '2003-01-01 00:00:49', '2003-01-01 00:01:45'],
    ['2/5 * * * * *', '2003-01-01 00:00:57', '2003-01-01 00:01:02'],
    ['* 0-1 10 * * *', '2021-02-24 09:50:35', '2021-02-24 10:00:00'],
    ['9 2/5 * * * *', '2003-01-01 00:57:30', '2003-01-01 01:02:09'],
    ['0 */5 * * * *', '2026-12-02 10:03:00', '2026-12-02 10:05:00'],
    ['0 0 */2 * * *', '2026-12-02 01:00:00', '2026-12-02 02:00:00'],
    ['0 30 9 * * 1-5', '2026-12-04 10:00:00', '2026-12-07 09:30:00'], // Friday after 9:30 → Monday
    ['0 5-10/2 * * * *', '2026-12-02 10:06:00', '2026-12-02 10:07:00'],
    // five fields: no seconds (second 0), as the host accepts it
    ['* * * * *', '2003-01-01 23:59:00', '2003-01-02 00:00:00'],
    ['* * * * *', '2003-12-31 23:59:00', '2004-01-01 00:00:00'],
    ['2/5 * * * *', '2003-01-01 00:57:00', '2003-01-01 01:02:00'],
    ['30 3 * * *', '2003-12-20 01:45:00', '2003-12-20 03:30:00'],
    ['40 14/1 * * *', '2000-01-01 14:40:00', '2000-01-01 15:40:00'],
    // reversed range: swapped, not refused
    ['0 0 5-2 * * *', '2026-12-02 03:30:00', '2026-12-02 04:00:00'],
    // spaces around and between fields
    ['  0   0  12 * *  * ', '2026-12-02 00:00:00', '2026-12-02 12:00:00'],
    // the base's fraction of a second is dropped; the result is strictly later
    ['* * * * * *', '2026-12-02 00:00:00.999', '2026-12-02 00:00:01'],
  ])('%s after %s → %s', (expression, after, expected) => {
    expect(next(expression, after)).toBe(expected);
  });

  it('accepts month and day names by case-insensitive prefix', () => {
    expect(next('10 * * February,April-Jun *', '2002-07-01 05:00:00')).toBe('2003-02-01 00:10:00');
    expect(
      next('20 * * january,FeB,Mar,april,May,JuNE,July,Augu,SEPT-October,Nov,DECEM *', '1988-03-11 14:23:00'),
    ).toBe('1988-03-11 15:20:00');
    expect(next('30 6 * * sunday', '2003-06-26 10:00:00')).toBe('2003-06-29 06:30:00');
    expect(next('30 6 * * SUNDAY', '2003-06-26 10:00:00')).toBe('2003-06-29 06:30:00');
    expect(series('15 18 * * Mon', '2003-06-01 14:55:00', 3)).toEqual([
      '2003-06-02 18:15:00',
      '2003-06-09 18:15:00',
      '2003-06-16 18:15:00',
    ]);
    expect(next('0 0 9 * * Mon-Fri', '2026-12-05 00:00:00')).toBe('2026-12-07 09:00:00');
    // `ju` is June (the first name it prefixes), `t` Tuesday
    expect(next('0 0 0 1 ju *', '2026-01-01 00:00:00')).toBe('2026-06-01 00:00:00');
    expect(next('0 0 0 * * t', '2026-12-02 00:00:00')).toBe('2026-12-08 00:00:00');
  });

  it('takes day of week 0-6 with Sunday 0, and refuses 7', () => {
    expect(next('30 6 * * 0', '2003-06-26 10:00:00')).toBe('2003-06-29 06:30:00');
    expect(next('0 0 0 * * 6', '2026-12-02 00:00:00')).toBe('2026-12-05 00:00:00');
    expect(() => parseSchedule('0 0 0 * * 7')).toThrow(/\[DayOfWeek\].*7 is out of range/);
    expect(() => parseSchedule('0 0 0 * * 5-7')).toThrow(/7 is out of range/);
  });

  it('needs day of month AND day of week when both are given (not cron’s OR)', () => {
    // 1 Sep 2003 and 1 Dec 2003 are the next 1sts that are Mondays.
    expect(series('45 16 1 * Mon', '2003-01-01 12:00:00', 2)).toEqual([
      '2003-09-01 16:45:00',
      '2003-12-01 16:45:00',
    ]);
    expect(next('0 0 0 13 * Fri', '2026-01-01 00:00:00')).toBe('2026-02-13 00:00:00');
  });

  it('steps over months too short for the day, and finds leap days', () => {
    expect(series('0 0 15,30,31 * *', '2000-01-31 00:00:00', 4)).toEqual([
      '2000-02-15 00:00:00',
      '2000-03-15 00:00:00',
      '2000-03-30 00:00:00',
      '2000-03-31 00:00:00',
    ]);
    expect(series('0 0 0 31 * *', '2026-01-31 00:00:00', 3)).toEqual([
      '2026-03-31 00:00:00',
      '2026-05-31 00:00:00',
      '2026-07-31 00:00:00',
    ]);
    expect(series('1 12 29 2 *', '2000-01-01 12:00:00', 3)).toEqual([
      '2000-02-29 12:01:00',
      '2004-02-29 12:01:00',
      '2008-02-29 12:01:00',
    ]);
    // 2100 is not a leap year
    expect(next('0 0 0 29 2 *', '2096-03-01 00:00:00')).toBe('2104-02-29 00:00:00');
    expect(next('* * * * *', '2004-02-28 23:59:00')).toBe('2004-02-29 00:00:00');
    expect(next('* * * * *', '2003-02-28 23:59:00')).toBe('2003-03-01 00:00:00');
    expect(next('* * * 3 *', '2004-02-29 23:59:59')).toBe('2004-03-01 00:00:00');
    expect(next('59 59 23 * * *', '2026-12-31 23:59:59')).toBe('2027-01-01 23:59:59');
    // a leap day that is a Monday: 2044
    expect(next('0 0 0 29 Feb Mon', '2026-01-01 00:00:00')).toBe('2044-02-29 00:00:00');
  });

  it('parses a date that never comes, whose next occurrence is DateTime.MaxValue', () => {
    expect(nextOccurrence('0 0 0 31 2 *', at('2026-01-01 00:00:00'))).toEqual(NEVER);
    expect(nextOccurrence('* * 31 Feb *', at('2026-01-01 00:00:00'))).toEqual(NEVER);
  });

  it('reads a TimeSpan when the text is not cron, as a constant interval', () => {
    expect(parseTimeSpanMs('00:05:00')).toBe(300_000);
    expect(parseTimeSpanMs('1:30')).toBe(90 * 60_000);
    expect(parseTimeSpanMs('1.02:03:04.5')).toBe(((26 * 60 + 3) * 60 + 4) * 1000 + 500);
    expect(parseTimeSpanMs('1:02:03:04')).toBe(((26 * 60 + 3) * 60 + 4) * 1000);
    expect(parseTimeSpanMs('2')).toBe(2 * 86_400_000);
    expect(parseTimeSpanMs(' 00:00:10 ')).toBe(10_000);
    expect(parseTimeSpanMs('24:00:00')).toBeUndefined();
    expect(parseTimeSpanMs('00:60:00')).toBeUndefined();
    expect(parseTimeSpanMs('5m')).toBeUndefined();

    const every = parseSchedule('00:00:30');
    expect(every.toString()).toBe('Constant: 00:00:30');
    expect(every.next(at('2026-12-02 10:00:00.250')).toISOString()).toBe('2026-12-02T10:00:30.250Z');
    expect(every.adjustForDst).toBe(false);
    expect(parseSchedule('0 0 * * * *').adjustForDst).toBe(true);
  });

  it.each([
    ['', /not recognized as a valid cron expression or timespan/],
    ['* * * *', /6 fields .* or 5/],
    ['* * * * * * *', /6 fields/],
    ['bad * * * * *', /\[Second\]/],
    ['* bad * * * *', /\[Minute\]/],
    ['* * 1,2,3,456,7 * * *', /456 is out of range/],
    ['* * 1,Z,3 * * *', /'Z' is not a valid \[Hour\] value/],
    ['* * 1/Z * * *', /'Z' is not a step number/],
    ['* * 3-l2 * * *', /'l2' is not a valid \[Hour\] value/],
    ['0 60 * * * *', /60 is out of range for the \[Minute\]/],
    ['0 0 24 * * *', /\[Hour\]/],
    ['0 0 0 0 * *', /0 is out of range for the \[Day\]/],
    ['0 0 0 32 * *', /\[Day\]/],
    ['0 0 0 * 13 *', /\[Month\]/],
    ['0 0 0 * Foo *', /'Foo' is not a known value name/],
    ['* * * * mon,bad,wed', /'bad' is not a known value name/],
    ['0 0 0 * * ,1', /\[DayOfWeek\]/],
    ['0 0 0 * * 1,', /cannot be empty/],
    ['0 0 0 * * */', /not a step number/],
    ['*\t* * * * *', /not recognized/],
    ['00:00:00', /zero or less/],
    ['-00:05:00', /zero or less/],
    ['every 5 minutes', /not recognized/],
  ])('refuses %j', (expression, message) => {
    expect(() => parseSchedule(expression)).toThrow(message);
  });

  it('names the expression in the error, as the host does', () => {
    expect(() => parseSchedule('0 0 25 * * *')).toThrow(
      "The schedule expression '0 0 25 * * *' was not recognized as a valid cron expression or timespan string",
    );
  });
});

describe('timer input as the host sends it', () => {
  it('turns the schedule monitor off for schedules that fire more than once a minute', () => {
    const now = at('2026-12-02 10:00:00');
    expect(monitorsSchedule(undefined, parseSchedule('*/1 * * * * *'), now)).toBe(false);
    // Counted over the minute after start, as the host does: two occurrences from 10:00:10, one from 10:00:00.
    expect(monitorsSchedule(undefined, parseSchedule('0,30 * * * * *'), at('2026-12-02 10:00:10'))).toBe(
      false,
    );
    expect(monitorsSchedule(undefined, parseSchedule('0,30 * * * * *'), now)).toBe(true);
    expect(monitorsSchedule(undefined, parseSchedule('0 * * * * *'), now)).toBe(true);
    expect(monitorsSchedule(undefined, parseSchedule('*/5 * 10 * * *'), now)).toBe(true);
    expect(monitorsSchedule(undefined, parseSchedule('* * * * *'), now)).toBe(true);
    expect(monitorsSchedule(undefined, parseSchedule('00:00:30'), now)).toBe(false);
    expect(monitorsSchedule(undefined, parseSchedule('00:01:00'), now)).toBe(true);
    expect(monitorsSchedule(false, parseSchedule('0 0 3 * * *'), now)).toBe(false);
  });

  it('serialises TimerInfo with .NET names and DateTime text', () => {
    const schedule = parseSchedule('0 0 3 * * *');
    const last = at('2026-12-01 03:00:00.123');
    const input = toTimerInput(schedule, { last, next: schedule.next(last), lastUpdated: last }, false);
    expect(JSON.parse(input.json ?? 'null')).toEqual({
      Schedule: { AdjustForDST: true },
      ScheduleStatus: {
        Last: '2026-12-01T03:00:00.123+00:00',
        Next: '2026-12-02T03:00:00+00:00',
        LastUpdated: '2026-12-01T03:00:00.123+00:00',
      },
      IsPastDue: false,
    });
    expect(JSON.parse(toTimerInput(schedule, undefined, false).json ?? 'null')).toMatchObject({
      ScheduleStatus: null,
    });
  });
});
