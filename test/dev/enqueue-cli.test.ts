import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { QueueClient } from '@azure/storage-queue';
import type { RunningAzurite } from '../../dev/azurite';
import { APP_ROOT } from '../../dev/root';
import { DEV_TENANT_ID, devUser } from '../../dev/standins/identities';
import { startAzuriteOnFreePorts } from '../../dev/stack';

// `npm run enqueue` (the built CLI, as `npm run enqueue` runs it) against a real Azurite: what it
// puts on the queue, and what it refuses to put there. Build first (`npm run build`).

const run = promisify(execFile);
const CLI = path.join(APP_ROOT, 'dist', 'dev', 'enqueue.js');
const QUEUE = 'enqueue-cli';

let azurite: RunningAzurite;
let queue: QueueClient;

beforeAll(async () => {
  azurite = await startAzuriteOnFreePorts(undefined);
  queue = new QueueClient(azurite.connectionString, QUEUE);
});

afterAll(async () => {
  await azurite?.stop();
});

beforeEach(async () => {
  await queue.createIfNotExists();
  await queue.clearMessages();
});

// The Teams app id the app would have (TEAMS_APP_ID): with it, an activity may leave out its topic.
const TEAMS_APP_ID = '1e13f4c2-e13f-4221-b73d-f3ad3f6d1760';

/** Runs the CLI with these settings only (the environment wins over a local.settings.json). */
async function enqueue(
  args: string[],
  settings: { TEAMS_APP_ID: string } = { TEAMS_APP_ID },
): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = {
    PATH: process.env.PATH ?? '',
    AzureWebJobsStorage: azurite.connectionString,
    NOTIFICATIONS_QUEUE: QUEUE,
    ...settings,
  };
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], { env, cwd: APP_ROOT });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const failed = err as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

/** Every message on the queue, decoded as the queue trigger decodes it (base64 JSON). */
async function onTheQueue(): Promise<unknown[]> {
  const { peekedMessageItems } = await queue.peekMessages({ numberOfMessages: 32 });
  return peekedMessageItems.map((m): unknown =>
    JSON.parse(Buffer.from(m.messageText, 'base64').toString('utf8')),
  );
}

describe('npm run enqueue --channel teams', () => {
  const aliceToBob = ['--channel', 'teams', '--user', 'alice', '--to', 'bob', '--text', 'approved it'];

  it('puts the Teams message on the queue, base64 JSON as the trigger reads it', async () => {
    const out = await enqueue(aliceToBob);
    expect(out).toMatchObject({ code: 0, stdout: expect.stringMatching(/^Enqueued message /) });
    expect(await onTheQueue()).toEqual([
      {
        channel: 'teams',
        userId: devUser('alice').oid,
        tenantId: DEV_TENANT_ID,
        activity: {
          recipient: { userId: devUser('bob').oid },
          activityType: 'systemDefault',
          templateParameters: [{ name: 'systemDefaultText', value: 'approved it' }],
        },
      },
    ]);
  });

  it('refuses a message the queue schema rejects, and puts nothing on the queue', async () => {
    // A tenant name where the schema wants its id: the app would only poison it (invalid_message).
    const out = await enqueue([...aliceToBob, '--tenant', 'contoso']);
    expect(out.code).toBe(1);
    expect(out.stderr).toMatch(/^Not enqueued \(invalid_message\): .*\/tenantId/);
    expect(await onTheQueue()).toEqual([]);
  });

  it('without TEAMS_APP_ID in its settings (as under npm start), refuses an activity without a topic', async () => {
    const out = await enqueue(aliceToBob, { TEAMS_APP_ID: '' });
    expect(out.code).toBe(2);
    expect(out.stderr).toMatch(/\/topic is required .*Give --topic and --web-url/);
    expect(await onTheQueue()).toEqual([]);
  });
});
