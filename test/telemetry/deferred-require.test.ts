import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { APP_ROOT } from '../../dev/root';

// withDeferredRequires wraps Node's own `require`, which jest's module registry does not use: it
// runs, built, in a plain Node process here, over a package that requires three modules.

interface Outcome {
  loadedAtStart: string[];
  usedAtLoad: string;
  loadedAfterUse: string[];
  usedLater: string;
  keys: string[];
  requireRestored: boolean;
}

function run(): Outcome {
  const dir = mkdtempSync(path.join(tmpdir(), 'graph-notify-deferred-'));
  const modules = path.join(dir, 'node_modules');
  const write = (name: string, body: string): void => {
    mkdirSync(path.join(modules, name), { recursive: true });
    writeFileSync(path.join(modules, name, 'index.js'), body);
  };
  // Each records its loading, so that what was loaded is read from outside the stand-in.
  const recorded = (name: string): string =>
    `(globalThis.loaded ??= []).push('${name}'); exports.value = '${name} works';`;
  write('read-at-load', recorded('read-at-load'));
  write('read-later', recorded('read-later'));
  write('never-read', recorded('never-read'));
  write(
    'sdk',
    `const atLoad = require('read-at-load');
     const later = require('read-later');
     const never = require('never-read');
     exports.usedAtLoad = atLoad.value;
     exports.useLater = () => later.value;
     exports.laterModule = later;`,
  );
  const script = `
    const Module = require('node:module');
    const before = Module.prototype.require;
    const { withDeferredRequires } = require(${JSON.stringify(
      path.join(APP_ROOT, 'dist', 'shared', 'telemetry', 'deferred-require.js'),
    )});
    const sdk = withDeferredRequires(
      new Set(['read-at-load', 'read-later', 'never-read']),
      () => require('sdk'),
    );
    const loadedAtStart = [...(globalThis.loaded ?? [])];
    const usedLater = sdk.useLater();
    process.stdout.write(JSON.stringify({
      loadedAtStart,
      usedAtLoad: sdk.usedAtLoad,
      loadedAfterUse: [...globalThis.loaded],
      usedLater,
      keys: Object.keys(sdk.laterModule),
      requireRestored: Module.prototype.require === before,
    }));`;
  return JSON.parse(
    execFileSync(process.execPath, ['-e', script], { cwd: dir, encoding: 'utf8' }),
  ) as Outcome;
}

it('loads a deferred module at its first use, and one never used never', () => {
  const outcome = run();
  // Read while the package loaded: loaded then, and working.
  expect(outcome.loadedAtStart).toEqual(['read-at-load']);
  expect(outcome.usedAtLoad).toBe('read-at-load works');
  // Used after: loaded at that use, with its exports intact.
  expect(outcome.usedLater).toBe('read-later works');
  expect(outcome.loadedAfterUse).toEqual(['read-at-load', 'read-later']);
  expect(outcome.keys).toEqual(['value']);
  // Never used: never loaded. And require is Node's own again.
  expect(outcome.loadedAfterUse).not.toContain('never-read');
  expect(outcome.requireRestored).toBe(true);
});
