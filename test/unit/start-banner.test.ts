import { toEnqueueRequest } from '../../dev/enqueue-message';
import { devUser } from '../../dev/standins/identities';
import { tryItLines } from '../../dev/start-banner';
import { parseActivityRequest } from '../../shared/channels/teams/activity';
import { parseNotificationRequest } from '../../shared/notifications/request';
import { fromQueueMessage } from '../../shared/queue/message';

// `npm start`'s "Try it" commands are copied as they are: each must be a request the app accepts,
// checked with the app's own validation (npm start sets no TEAMS_APP_ID, so a topic is required).

const NOW = new Date('2026-11-30T10:00:00.000Z');
const banner = tryItLines('http://localhost:7071/api', 'https://127.0.0.1:7083/').join('\n');

/** The words of a shell command line, for the quoting the banner uses ('…' and "…", no escapes). */
function shellWords(line: string): string[] {
  return [...line.matchAll(/'([^']*)'|"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2] ?? m[3] ?? '');
}

/** The body of the curl that posts to `path`: its `-d '…'`, which may span lines. */
function curlBody(path: string): unknown {
  const curl = banner
    .split('curl -s -X POST ')
    .find((c) => c.startsWith(`http://localhost:7071/api/${path} `));
  const body = curl ? /-d '([^']*)'/.exec(curl)?.[1] : undefined;
  if (!body) throw new Error(`no curl posting to /api/${path} in the banner`);
  return JSON.parse(body);
}

describe("npm start's Try it commands", () => {
  it('posts a notification the app accepts, and asks for its status by its appNotificationId', () => {
    const body = curlBody('notifications') as { appNotificationId: string };
    expect(() => parseNotificationRequest(body, NOW)).not.toThrow();
    expect(banner).toContain(
      `curl -s http://localhost:7071/api/notifications/${body.appNotificationId} -H "Authorization: Bearer $TOKEN"`,
    );
  });

  it('posts a Teams activity the app accepts, from alice (the token) to bob by user principal name', () => {
    expect(banner).toContain('TOKEN=$(npm run --silent token -- --user alice)');
    const body = curlBody('activities');
    const defaults = { teamsAppId: undefined, graphOrigin: 'https://127.0.0.1:7083' };
    expect(parseActivityRequest(body, NOW, defaults)).toMatchObject({
      recipient: { userId: devUser('bob').upn },
      activityType: 'systemDefault',
      previewText: { content: 'Expense report #42: 120 EUR' },
      topic: { source: 'text', value: 'Expense #42' },
    });
    expect(banner).toContain('then watch https://127.0.0.1:7083/');
  });

  it('enqueues messages the queue trigger accepts, a Teams one from alice to bob among them', () => {
    const enqueues = banner
      .replace(/ \\\n\s*/g, ' ')
      .split('\n')
      .filter((l) => l.trim().startsWith('npm run enqueue -- '));
    const messages = enqueues.map((line) => {
      const request = toEnqueueRequest(shellWords(line).slice(4), NOW);
      if (request === 'help') throw new Error(line);
      fromQueueMessage(request.message, NOW);
      return request.message;
    });
    expect(messages).toContainEqual(
      expect.objectContaining({
        channel: 'teams',
        userId: devUser('alice').oid,
        activity: expect.objectContaining({ recipient: { userId: devUser('bob').oid } }),
      }),
    );
  });
});
