import { UsageError, recipientId, toEnqueueRequest, type EnqueueOptions } from '../../dev/enqueue-message';
import { DEV_TENANT_ID, OTHER_TENANT_ID, devUser } from '../../dev/standins/identities';
import { fromQueueMessage, toQueueText } from '../../shared/queue/message';

// `npm run enqueue`'s command lines to the messages they put on the deferred queue, read back
// from the wire form (base64 JSON, as the queue trigger reads it) and compared with the contract.

const NOW = new Date('2026-11-30T10:00:00.000Z');
const alice = devUser('alice');
const bob = devUser('bob');

// The app's TEAMS_APP_ID, for the messages that leave their topic to it.
const WITH_APP = { teamsAppId: '1e13f4c2-e13f-4221-b73d-f3ad3f6d1760' };

function onTheWire(args: string[]): unknown {
  const request = toEnqueueRequest(args, NOW, WITH_APP);
  if (request === 'help') throw new Error('help');
  return JSON.parse(Buffer.from(toQueueText(request.message), 'base64').toString('utf8'));
}

function usage(args: string[], options: EnqueueOptions = WITH_APP): string {
  try {
    toEnqueueRequest(args, NOW, options);
  } catch (err) {
    if (err instanceof UsageError) return err.message;
    throw err;
  }
  throw new Error(`no usage error for ${args.join(' ')}`);
}

describe('npm run enqueue without --channel: a Graph notification, as before', () => {
  it('builds the message the queue trigger accepts', () => {
    const args = ['--user', 'alice', '--title', 'Order shipped', '--body', 'Tuesday', '--in', '60'];
    const wire = onTheWire(args);
    expect(wire).toEqual({
      userId: alice.oid,
      tenantId: DEV_TENANT_ID,
      notification: {
        payload: { visualContent: { title: 'Order shipped', body: 'Tuesday' } },
        deliverAt: '2026-11-30T10:01:00.000Z',
      },
    });
    expect(() => fromQueueMessage(wire, NOW)).not.toThrow();
    expect(onTheWire(['--user', 'bob', '--title', 'Hi', '--id', 'n-1', '--correlation-id', 'c-1'])).toEqual({
      userId: bob.oid,
      tenantId: DEV_TENANT_ID,
      notification: { payload: { visualContent: { title: 'Hi' } }, appNotificationId: 'n-1' },
      correlationId: 'c-1',
    });
  });
});

describe('npm run enqueue --channel teams', () => {
  it('sends as a registered user: userId is the sender, the activity a systemDefault text to the recipient', () => {
    // prettier-ignore
    const args = [
      '--channel', 'teams', '--user', 'alice', '--to', 'bob',
      '--text', 'approved your expense report', '--preview', 'Expense #42: 120 EUR',
      '--topic', 'Expense #42', '--web-url', 'https://teams.microsoft.com/l/entity/x',
      '--in', '30', '--correlation-id', 'exp-42',
    ];
    expect(onTheWire(args)).toEqual({
      channel: 'teams',
      userId: alice.oid,
      tenantId: DEV_TENANT_ID,
      activity: {
        recipient: { userId: bob.oid },
        activityType: 'systemDefault',
        templateParameters: [{ name: 'systemDefaultText', value: 'approved your expense report' }],
        previewText: { content: 'Expense #42: 120 EUR' },
        topic: { source: 'text', value: 'Expense #42', webUrl: 'https://teams.microsoft.com/l/entity/x' },
        deliverAt: '2026-11-30T10:00:30.000Z',
      },
      correlationId: 'exp-42',
    });
  });

  it('sends as the app: "as": "app" and no userId, tenantId the recipient\'s tenant', () => {
    expect(onTheWire(['--channel', 'teams', '--as-app', '--to', 'bob'])).toEqual({
      channel: 'teams',
      as: 'app',
      tenantId: DEV_TENANT_ID,
      activity: {
        recipient: { userId: bob.oid },
        activityType: 'systemDefault',
        templateParameters: [{ name: 'systemDefaultText', value: 'sent you a notification' }],
      },
    });
    const toMallory = onTheWire(['--channel', 'teams', '--as-app', '--to', 'mallory@elsewhere.local']);
    expect(toMallory).toMatchObject({
      tenantId: OTHER_TENANT_ID,
      activity: { recipient: { userId: 'mallory@elsewhere.local' } },
    });
    expect(toMallory).not.toHaveProperty('userId');
  });

  it('names recipients as Graph takes them: dev users by oid, UPNs and GUIDs as given', () => {
    expect(recipientId('bob')).toBe(bob.oid);
    expect(recipientId('Bob@Graph-Notify.local')).toBe('Bob@Graph-Notify.local');
    expect(recipientId('0B0B0000-0000-4000-8000-000000000002')).toBe('0B0B0000-0000-4000-8000-000000000002');
    expect(recipientId('dave')).toBe(devUser('dave').oid);
  });

  it('fills a templated activity type from --param', () => {
    // prettier-ignore
    const wire = onTheWire([
      '--channel', 'teams', '--user', 'alice', '--to', 'bob', '--activity-type', 'approvalRequired',
      '--param', 'approvalTaskId=expense 42', '--param', 'note=a=b',
    ]);
    expect(wire).toMatchObject({
      activity: {
        activityType: 'approvalRequired',
        templateParameters: [
          { name: 'approvalTaskId', value: 'expense 42' },
          { name: 'note', value: 'a=b' },
        ],
      },
    });
  });

  it('refuses command lines that name no complete message or mix the channels', () => {
    expect(usage(['--channel', 'teams', '--user', 'alice'])).toMatch(/--to is required/);
    expect(usage(['--channel', 'teams', '--to', 'bob'])).toMatch(/--user .* or send with --as-app/);
    expect(usage(['--channel', 'teams', '--as-app', '--user', 'alice', '--to', 'bob'])).toMatch(
      /leave out --user/,
    );
    expect(usage(['--channel', 'teams', '--user', 'alice', '--to', 'bob', '--title', 'x'])).toMatch(
      /^--title: only for Graph/,
    );
    expect(usage(['--user', 'alice', '--title', 'x', '--to', 'bob'])).toMatch(
      /^--to: only with --channel teams/,
    );
    expect(usage(['--channel', 'sms', '--user', 'alice'])).toMatch(/--channel sms/);
    expect(usage(['--channel', 'teams', '--user', 'alice', '--to', 'bob', '--topic', 'x'])).toMatch(
      /--web-url go together/,
    );
    expect(usage(['--channel', 'teams', '--user', 'alice', '--to', 'bob', '--param', 'x'])).toMatch(
      /<name>=<value>/,
    );
    expect(
      usage([
        '--channel',
        'teams',
        '--user',
        'alice',
        '--to',
        'bob',
        '--activity-type',
        'approvalRequired',
        '--text',
        'x',
      ]),
    ).toMatch(/--text: the text of approvalRequired comes from its template/);
    expect(usage(['--user', 'alice', '--title', 'x', '--in', 'soon'])).toMatch(/--in soon/);
    expect(usage(['--user', 'alice', '--title', 'x', '--bogus'])).toMatch(/bogus/);
  });

  it('refuses an activity the app would poison: no topic without TEAMS_APP_ID, a link off Teams, too far ahead', () => {
    const toBob = ['--channel', 'teams', '--user', 'alice', '--to', 'bob'];
    expect(usage(toBob, {})).toMatch(
      /^The app would refuse this activity \(invalid_message\): \/topic is required .*Give --topic and --web-url, or set TEAMS_APP_ID/,
    );
    const topic = ['--topic', 'Order #43', '--web-url', 'https://teams.microsoft.com/l/entity/x'];
    expect(() => toEnqueueRequest([...toBob, ...topic], NOW, {})).not.toThrow();
    expect(
      usage([...toBob, '--topic', 'Order #43', '--web-url', 'https://example.com/orders/43'], {}),
    ).toMatch(/\/topic\/webUrl must be an https link on a Teams host/);
    expect(usage([...toBob, '--in', String(8 * 24 * 3600)])).toMatch(/\/deliverAt is more than 7 days ahead/);
  });
});
