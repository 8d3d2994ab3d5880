import { matchRoute, parseRoute } from '../../dev/host/http';
import { timespanMs } from '../../dev/settings';

describe('local host routing', () => {
  it('matches literal routes case-insensitively', () => {
    expect(matchRoute(parseRoute('me/registration'), ['Me', 'Registration'])).toEqual({});
    expect(matchRoute(parseRoute('me/registration'), ['me'])).toBeUndefined();
    expect(matchRoute(parseRoute('health'), ['health', 'extra'])).toBeUndefined();
  });

  it('binds parameters, optional and catch-all segments', () => {
    expect(matchRoute(parseRoute('items/{id:int}'), ['items', '42'])).toEqual({ id: '42' });
    expect(matchRoute(parseRoute('items/{id?}'), ['items'])).toEqual({});
    expect(matchRoute(parseRoute('files/{*path}'), ['files', 'a', 'b.txt'])).toEqual({ path: 'a/b.txt' });
  });
});

describe('host.json timespans', () => {
  it('reads hh:mm:ss and d.hh:mm:ss', () => {
    expect(timespanMs('00:00:30', 0)).toBe(30_000);
    expect(timespanMs('1.00:00:00', 0)).toBe(86_400_000);
    expect(timespanMs(undefined, 5)).toBe(5);
    expect(() => timespanMs('30s', 0)).toThrow(/not a timespan/);
  });
});
