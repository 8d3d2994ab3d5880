// The second half of `npm run build` (tsc has type-checked and emitted dist/ for dev/ and bench/):
//   1. compiles the published JSON Schemas into validation functions (Ajv standalone code), so the
//      app never runs Ajv's compiler, at load or at a request;
//   2. bundles every functions/*.ts into one CommonJS file, dist/app/index.js (`package.json`
//      `main`): what the local host, the tests, the benchmark and Azure all load.
// Usage: node dist/dev/build.js
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import Ajv, { _ } from 'ajv';
import standaloneCode from 'ajv/dist/standalone';
import addFormats from 'ajv-formats';
import { build, type Plugin } from 'esbuild';
import { APP_ROOT } from './root';

/** Where the generated validators land; `package.json` `imports` maps `#schema-validators` here. */
export const VALIDATORS_FILE = path.join(APP_ROOT, 'dist', 'generated', 'schema-validators.js');
export const BUNDLE_FILE = path.join(APP_ROOT, 'dist', 'app', 'index.js');

/**
 * Left out of the bundle: the worker provides `@azure/functions-core`; the telemetry SDK is
 * required only when APPLICATIONINSIGHTS_CONNECTION_STRING is set (from node_modules, where its
 * instrumentations can patch what they patch, and where it finds its own files at run time).
 * These, and only these, are what the deployed package installs (see dev/deploy-package.ts).
 */
export const EXTERNAL = [
  '@azure/functions-core',
  'applicationinsights',
  '@opentelemetry/*',
  '@azure/monitor-opentelemetry',
  '@azure/monitor-opentelemetry-exporter',
];

/** Node 20.19 is the oldest version `engines` allows. */
const TARGET = 'node20.19';

// Export name per schema reference: what shared/schema-validators.d.ts declares.
const VALIDATORS: Record<string, string> = {
  notification: 'https://graph-notify/schemas/notification.schema.json',
  activity: 'https://graph-notify/schemas/activity.schema.json',
  notificationMessage: 'https://graph-notify/schemas/deferred-message.schema.json#/definitions/notification',
  teamsMessage: 'https://graph-notify/schemas/deferred-message.schema.json#/definitions/teams',
};

/** The validators as a CommonJS module. Same Ajv options the app used to compile with at run time. */
export function validatorsSource(): string {
  const schemaDir = path.join(APP_ROOT, 'schemas');
  const schemas = readdirSync(schemaDir)
    .filter((f) => f.endsWith('.schema.json'))
    .sort()
    .map((f) => JSON.parse(readFileSync(path.join(schemaDir, f), 'utf8')) as object);
  const ajv = new Ajv({
    allErrors: true,
    strict: true,
    // strictRequired off: the Teams message's oneOf names `userId`/`as` declared beside it.
    strictRequired: false,
    // The generated code requires ajv-formats' own date-time check (bundled with the app).
    code: { source: true, formats: _`require("ajv-formats/dist/formats").fullFormats` },
  });
  addFormats(ajv, ['date-time']);
  ajv.addSchema(schemas);
  return standaloneCode(ajv, VALIDATORS);
}

/**
 * `require()` in our own files (the SDKs loaded on first use) resolves as `import` does, so that
 * a package imported in one place and required in another is bundled once (its ES module build),
 * not as two copies of which one is initialised twice.
 */
const oneBuildPerPackage: Plugin = {
  name: 'one-build-per-package',
  setup(b) {
    b.onResolve({ filter: /^[^./#]/ }, async (args) => {
      if (args.kind !== 'require-call' || args.importer.includes(`${path.sep}node_modules${path.sep}`))
        return undefined;
      if (args.pluginData === 'again') return undefined;
      const resolved = await b.resolve(args.path, {
        kind: 'import-statement',
        importer: args.importer,
        resolveDir: args.resolveDir,
        pluginData: 'again',
      });
      return resolved.errors.length > 0 ? undefined : resolved;
    });
  },
};

export async function bundle(): Promise<void> {
  const functionsDir = path.join(APP_ROOT, 'functions');
  const entries = readdirSync(functionsDir)
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
    .sort();
  const result = await build({
    stdin: {
      // One entry that imports every trigger file, in the order the worker would load them.
      contents: entries.map((f) => `import './functions/${f.replace(/\.ts$/, '')}';`).join('\n'),
      resolveDir: APP_ROOT,
      sourcefile: 'app-entry.ts',
      loader: 'ts',
    },
    outfile: BUNDLE_FILE,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: TARGET,
    external: EXTERNAL,
    plugins: [oneBuildPerPackage],
    // ES module builds bundled into a CommonJS file keep their `import.meta.url` (storage-common
    // builds a `require` from it): the bundle's own URL.
    banner: { js: 'var __bundleUrl = require("node:url").pathToFileURL(__filename).href;' },
    define: { 'import.meta.url': '__bundleUrl' },
    sourcemap: true,
    metafile: true,
    logLevel: 'warning',
  });
  writeFileSync(path.join(path.dirname(BUNDLE_FILE), 'meta.json'), JSON.stringify(result.metafile));
}

async function main(): Promise<void> {
  mkdirSync(path.dirname(VALIDATORS_FILE), { recursive: true });
  writeFileSync(VALIDATORS_FILE, validatorsSource());
  await bundle();
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(1);
  });
}
