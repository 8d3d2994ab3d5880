// Section 4b: cold start as a caller sees it — from spawning the local Functions host to the first
// `201` of `POST /api/notifications` for a user the app has never seen (token verification with a
// cold JWKS cache, the OBO exchange, the refresh-token write, the Graph POST), against the same for
// the floor function app (bench/floor-app: one Graph POST with a token it already holds), on the
// same host, stand-ins and Azurite. Interleaved, so a slow moment of the machine hits both.
import { startFunctionHost } from '../dev/host-process';
import type { LocalStack } from '../dev/stack';
import { devUser } from '../dev/standins/identities';
import { floorSettings, graphTokenFor } from './floor';
import { median, postJson, round } from './load';

export interface FirstResponseRow {
  what: 'app, new user' | 'floor function';
  runs: number;
  /** Spawn to the host's "listening" line: Node, the host, and loading the app. */
  spawnToListeningMsMedian: number;
  /** "listening" to the 201: the first request's own work. */
  listeningTo201MsMedian: number;
  spawnTo201MsMedian: number;
  spawnTo201MsMin: number;
  spawnTo201MsMax: number;
}

interface Sample {
  listening: number;
  total: number;
}

export async function measureFirstResponse(options: {
  stack: LocalStack;
  settings: Record<string, string>;
  floorApp: string;
  runs: number;
}): Promise<{ rows: FirstResponseRow[]; appOverFloorMs: number }> {
  const { stack } = options;
  // The floor's token is acquired once, untimed: "a token it already holds".
  const floorUser = devUser('bench-first-floor-user');
  const floorToken = await graphTokenFor(stack, await stack.entra!.issueUserToken({ user: floorUser.oid }));
  const samples: Record<FirstResponseRow['what'], Sample[]> = { 'app, new user': [], 'floor function': [] };
  const once = async (what: FirstResponseRow['what'], run: number): Promise<void> => {
    // A user never seen by any host of this run: nothing cached, no refresh token stored.
    const user = devUser(`bench-first-user-${process.pid}-${run}`);
    const token = await stack.entra!.issueUserToken({ user: user.oid });
    const started = performance.now();
    const host = await startFunctionHost(
      what === 'app, new user'
        ? { settings: options.settings, port: 0 }
        : { settings: floorSettings(options.settings, floorToken), port: 0, appRoot: options.floorApp },
    );
    try {
      const listening = performance.now() - started;
      const status = await postJson(`${host.url}/api/notifications`, token, {
        payload: { visualContent: { title: `First ${run}` } },
      });
      const total = performance.now() - started;
      if (status !== 201) throw new Error(`${what}: the first request answered ${status}\n${host.output()}`);
      samples[what].push({ listening, total });
    } finally {
      await host.stop();
    }
  };
  for (let run = 0; run < options.runs; run++) {
    await once('app, new user', run);
    await once('floor function', run);
  }
  const rows = (Object.keys(samples) as FirstResponseRow['what'][]).map((what): FirstResponseRow => {
    const list = samples[what];
    const totals = list.map((s) => s.total);
    return {
      what,
      runs: list.length,
      spawnToListeningMsMedian: round(median(list.map((s) => s.listening)), 1),
      listeningTo201MsMedian: round(median(list.map((s) => s.total - s.listening)), 1),
      spawnTo201MsMedian: round(median(totals), 1),
      spawnTo201MsMin: round(Math.min(...totals), 1),
      spawnTo201MsMax: round(Math.max(...totals), 1),
    };
  });
  return { rows, appOverFloorMs: round(rows[0]!.spawnTo201MsMedian - rows[1]!.spawnTo201MsMedian, 1) };
}
