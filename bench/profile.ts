// Where the app's CPU goes per request at concurrency 64: a host started with V8's CPU profiler on
// (bench/cpu-profile-preload.js through NODE_OPTIONS=--require, which the local host process inherits
// from its settings), a measured load, then the profile's self time summed by package. Run after the measured rows, on a host of its own, so the
// profiler's overhead is in no row's figure.
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { startFunctionHost } from '../dev/host-process';
import { APP_ROOT } from '../dev/root';
import { postJson, round, runClosedLoop } from './load';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileRow {
  concurrency: number;
  requests: number;
  /** Host CPU (profile samples other than idle) over the whole profile, per measured request. */
  cpuMsPerRequest: number;
  /** Wall time of the profile that was not idle, as a share. */
  busyShare: number;
  /**
   * Self time by owner, with Node's own code (node:*, native) charged to the nearest caller that is
   * not Node's: the undici inside Node's fetch counts for whoever called fetch, crypto for whoever verified.
   */
  byPackage: { what: string; selfMs: number; share: number; perRequestMs: number }[];
  /** Self time by owner, Node's own code by module (what the work is, rather than who asked). */
  bySelf: { what: string; selfMs: number; share: number; perRequestMs: number }[];
  topFunctions: { what: string; selfMs: number; share: number }[];
}

/** A profile node's owner: the npm package, Node itself, the app, the local host, or V8's own buckets. */
export function ownerOf(url: string, functionName: string): string {
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  if (url.startsWith('node:')) return 'node (core)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1];
  if (pkg) return pkg;
  const rel = url.replace(/^file:\/\//, '');
  if (rel.includes('/dist/functions/') || rel.includes('/dist/shared/')) return 'app (shared/, functions/)';
  if (rel.includes('/dist/dev/host/')) return 'local host (dev/host)';
  if (/\/dist\/[^/]+\.js$/.test(rel) || rel.includes('/dist/app')) return 'app (bundle)';
  return rel.startsWith(APP_ROOT) ? path.relative(APP_ROOT, rel) : rel;
}

/**
 * Sums the samples taken within `window` (microseconds of the monotonic clock: V8 stamps profiles
 * with it, and on Linux it is CLOCK_MONOTONIC, the same in every process, as `process.hrtime`).
 */
export function summarise(
  profile: CpuProfile,
  requests: number,
  concurrency: number,
  window: { from: number; to: number },
): ProfileRow {
  const byNode = new Map<number, number>();
  let at = profile.startTime;
  profile.samples.forEach((id, i) => {
    const delta = profile.timeDeltas[i] ?? 0;
    at += delta;
    if (at >= window.from && at <= window.to) byNode.set(id, (byNode.get(id) ?? 0) + delta);
  });
  if (byNode.size === 0) throw new Error('the CPU profile has no sample in the measured window');
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const parents = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parents.set(c, n.id);
  const isNodeOwn = (owner: string): boolean => owner === 'node (core)' || owner === '(native)';
  const chargedTo = (id: number): string => {
    for (let at: number | undefined = id; at !== undefined; at = parents.get(at)) {
      const f = nodes.get(at)!.callFrame;
      const owner = ownerOf(f.url, f.functionName);
      if (!isNodeOwn(owner) && owner !== '(root)') return owner;
    }
    return 'node (core), no caller';
  };
  const packages = new Map<string, number>();
  const selves = new Map<string, number>();
  const functions = new Map<string, number>();
  const add = (m: Map<string, number>, key: string, micros: number): void => {
    m.set(key, (m.get(key) ?? 0) + micros);
  };
  let busy = 0;
  let total = 0;
  for (const [id, micros] of byNode) {
    const node = nodes.get(id)!;
    const owner = ownerOf(node.callFrame.url, node.callFrame.functionName);
    total += micros;
    if (owner === '(idle)') continue;
    busy += micros;
    add(packages, isNodeOwn(owner) ? chargedTo(id) : owner, micros);
    add(selves, owner === 'node (core)' ? node.callFrame.url : owner, micros);
    const f = node.callFrame;
    const where = f.url ? `${f.url.replace(/^.*node_modules\//, '')}:${f.lineNumber + 1}` : owner;
    add(functions, `${f.functionName || '(anonymous)'} — ${where}`, micros);
  }
  const ms = (micros: number): number => micros / 1000;
  const sorted = (m: Map<string, number>): [string, number][] => [...m].sort((a, b) => b[1] - a[1]);
  const top15 = (m: Map<string, number>) =>
    sorted(m)
      .slice(0, 15)
      .map(([what, micros]) => ({
        what,
        selfMs: round(ms(micros), 0),
        share: round(micros / busy, 3),
        perRequestMs: round(ms(micros) / requests, 3),
      }));
  return {
    concurrency,
    requests,
    cpuMsPerRequest: round(ms(busy) / requests, 2),
    busyShare: round(busy / total, 3),
    byPackage: top15(packages),
    bySelf: top15(selves),
    topFunctions: sorted(functions)
      .slice(0, 15)
      .map(([what, micros]) => ({ what, selfMs: round(ms(micros), 0), share: round(micros / busy, 3) })),
  };
}

/**
 * Starts the app's host with the CPU profiler on, warms it (each user's first request does the OBO
 * and the vault write), runs `requests` at `concurrency`, stops the host (the profile is written at
 * exit) and summarises the samples of the measured window only.
 */
export async function profileSendNow(options: {
  settings: Record<string, string>;
  tokens: readonly string[];
  concurrency: number;
  requests: number;
}): Promise<ProfileRow> {
  const file = path.join(APP_ROOT, '.local', 'bench', 'send-now-c64.cpuprofile');
  mkdirSync(path.dirname(file), { recursive: true });
  rmSync(file, { force: true });
  const host = await startFunctionHost({
    settings: {
      ...options.settings,
      NODE_OPTIONS: `--require ${path.join(__dirname, 'cpu-profile-preload.js')}`,
      BENCH_CPU_PROFILE_FILE: file,
    },
    port: 0,
  });
  const micros = (): number => Number(process.hrtime.bigint() / 1000n);
  const window = { from: 0, to: 0 };
  const send = (i: number): Promise<number> =>
    postJson(`${host.url}/api/notifications`, options.tokens[i % options.tokens.length]!, {
      payload: { visualContent: { title: `Profile ${i}` } },
    });
  try {
    // One request per user first: the OBO and the vault write are the cold path, not the warm one.
    await runClosedLoop({ count: options.tokens.length, concurrency: 16, expectStatus: 201, send });
    window.from = micros();
    const result = await runClosedLoop({
      count: options.requests,
      concurrency: options.concurrency,
      expectStatus: 201,
      send,
    });
    window.to = micros();
    if (result.failed > 0) throw new Error(`profile run: ${JSON.stringify(result.failures)}`);
  } finally {
    await host.stop();
  }
  if (!existsSync(file)) throw new Error(`no CPU profile was written to ${file}`);
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  return summarise(profile, options.requests, options.concurrency, window);
}
