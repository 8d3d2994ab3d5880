import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BUNDLE_FILE, EXTERNAL } from '../../dev/build';
import { APP_ROOT } from '../../dev/root';

// What `npm run build` bundles (dist/app/index.js, what `package.json` `main` names), read from the
// built file and its esbuild metafile: which packages stay outside, and which bundled modules run
// while the app loads. Needs `npm run build` first (as `npm test` does).

interface Metafile {
  outputs: Record<
    string,
    { inputs: Record<string, unknown>; imports: { path: string; external?: boolean }[] }
  >;
}

const bundleText = (): string => readFileSync(BUNDLE_FILE, 'utf8');
const metafile = (): Metafile['outputs'][string] => {
  const meta = JSON.parse(
    readFileSync(path.join(path.dirname(BUNDLE_FILE), 'meta.json'), 'utf8'),
  ) as Metafile;
  return meta.outputs[path.relative(APP_ROOT, BUNDLE_FILE).split(path.sep).join('/')]!;
};

/** Loaded on first use: not one of their modules may run while the app loads. */
const ON_FIRST_USE = [
  '@azure/identity',
  '@azure/keyvault-secrets',
  '@azure/storage-queue',
  '@azure/core-rest-pipeline',
];

const packageOf = (input: string): string | undefined =>
  /node_modules\/((?:@[^/]+\/)?[^/]+)\/(?!.*node_modules\/)/.exec(input)?.[1];

it('is what package.json main names', () => {
  const pkg = JSON.parse(readFileSync(path.join(APP_ROOT, 'package.json'), 'utf8')) as { main: string };
  expect(path.resolve(APP_ROOT, pkg.main)).toBe(BUNDLE_FILE);
});

it('leaves outside only the worker-provided module, the telemetry SDK and Node built-ins', () => {
  const patterns = EXTERNAL.map((e) => new RegExp(`^${e.replace('*', '.+')}$`));
  const outside = [
    ...new Set(
      metafile()
        .imports.filter((i) => i.external)
        .map((i) => i.path),
    ),
  ];
  const unexpected = outside.filter((p) => !isBuiltin(p) && !patterns.some((r) => r.test(p)));
  expect(unexpected).toEqual([]);
  expect(outside).toContain('@azure/functions-core');
});

it('holds the schemas as compiled code: no Ajv compiler in the bundle', () => {
  const ajv = Object.keys(metafile().inputs).filter((input) => packageOf(input) === 'ajv');
  expect(ajv.length).toBeGreaterThan(0);
  expect(ajv.filter((input) => !input.includes('/ajv/dist/runtime/'))).toEqual([]);
});

it('initialises the Key Vault, identity and Storage SDKs only on first use, not while the app loads', () => {
  const text = bundleText();
  const lazyInputs = Object.keys(metafile().inputs).filter((input) =>
    ON_FIRST_USE.includes(packageOf(input) ?? ''),
  );
  expect(lazyInputs.length).toBeGreaterThan(50);
  // Each of their modules sits in a function esbuild runs at its first require (`__esm`/`__commonJS`
  // keyed by the module's path), none in the bundle's top level, which runs as it loads.
  expect(lazyInputs.filter((input) => !text.includes(`\n  ${JSON.stringify(input)}(`))).toEqual([]);

  // And none of those functions ran while the app loaded: the bundle, with esbuild's two wrappers
  // replaced by ones that record what they initialise, loaded as the worker loads it.
  const helpers = /^var __esm = [\s\S]*?^};\nvar __commonJS = [\s\S]*?^};\n/m;
  expect(text).toMatch(helpers);
  const recording = `
var __initialised = globalThis.__initialised = [];
var __esm = (fn, res) => function __init() {
  if (fn) __initialised.push(__getOwnPropNames(fn)[0]);
  return fn && (res = (0, fn[__getOwnPropNames(fn)[0]])(fn = 0)), res;
};
var __commonJS = (cb, mod) => function __require() {
  if (!mod) __initialised.push(__getOwnPropNames(cb)[0]);
  return mod || (0, cb[__getOwnPropNames(cb)[0]])((mod = { exports: {} }).exports, mod), mod.exports;
};
`;
  const dir = mkdtempSync(path.join(tmpdir(), 'graph-notify-bundle-'));
  try {
    const recorded = path.join(dir, 'index.js');
    writeFileSync(recorded, text.replace(helpers, recording));
    const loader = `
      const { WorkerRegistry } = require(${JSON.stringify(path.join(APP_ROOT, 'dist', 'dev', 'host', 'core.js'))});
      const { provideCoreModule } = require(${JSON.stringify(path.join(APP_ROOT, 'dist', 'dev', 'host', 'load.js'))});
      const registry = new WorkerRegistry(() => undefined);
      provideCoreModule(registry.createCoreApi());
      require(${JSON.stringify(recorded)});
      process.stdout.write(JSON.stringify({ functions: registry.functions.length, initialised: globalThis.__initialised }));
    `;
    const out = execFileSync(process.execPath, ['-e', loader], {
      encoding: 'utf8',
      env: {
        PATH: process.env.PATH ?? '',
        ENTRA_TENANT_ID: '00000000-0000-4000-8000-000000000001',
        ENTRA_CLIENT_ID: '00000000-0000-4000-8000-000000000002',
        ENTRA_CLIENT_SECRET: 'not-used',
        ENTRA_AUTHORITY_HOST: 'https://127.0.0.1:9',
        KEY_VAULT_URL: 'https://127.0.0.1:9',
        AZURE_TENANT_ID: '00000000-0000-4000-8000-000000000001',
        AZURE_CLIENT_ID: '00000000-0000-4000-8000-000000000003',
        AZURE_CLIENT_SECRET: 'not-used',
        AZURE_AUTHORITY_HOST: 'https://127.0.0.1:9',
        GRAPH_BASE_URL: 'https://127.0.0.1:9/beta',
        TARGET_HOST_NAME: 'graph-notify.local',
        AzureWebJobsStorage: 'UseDevelopmentStorage=true',
      },
    });
    const { functions, initialised } = JSON.parse(out) as { functions: number; initialised: string[] };
    expect(functions).toBeGreaterThan(0);
    // The recorder works: the Functions library is initialised this way as the app loads.
    expect(initialised.some((input) => packageOf(input) === '@azure/functions')).toBe(true);
    expect(initialised.filter((input) => ON_FIRST_USE.includes(packageOf(input) ?? ''))).toEqual([]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
