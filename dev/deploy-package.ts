// `npm run package`: the folder to deploy, dist/deploy/ — the bundle, host.json, a package.json
// whose `main` names the bundle and whose dependencies are only the packages the bundle leaves
// external, and those packages (with what they depend on) copied from node_modules as `npm ci`
// installed them, so the versions are the lock file's. Run after `npm run build`.
// Usage: node dist/dev/deploy-package.js [--out DIR]
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import path from 'node:path';
import { BUNDLE_FILE } from './build';
import { APP_ROOT } from './root';

interface PackageJson {
  name: string;
  version: string;
  description?: string;
  license?: string;
  engines?: Record<string, string>;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}

const readJson = <T>(file: string): T => JSON.parse(readFileSync(file, 'utf8')) as T;

/** Provided by the Functions worker: never installed. */
const WORKER_PROVIDED = '@azure/functions-core';

/** The packages the bundle requires at run time, from esbuild's metafile. */
export function externalPackages(): string[] {
  const meta = readJson<{ outputs: Record<string, { imports: { path: string; external?: boolean }[] }> }>(
    path.join(path.dirname(BUNDLE_FILE), 'meta.json'),
  );
  const output = meta.outputs[path.relative(APP_ROOT, BUNDLE_FILE).split(path.sep).join('/')];
  if (!output) throw new Error('dist/app/meta.json does not describe the bundle: run npm run build');
  const names = output.imports
    .filter((i) => i.external && !isBuiltin(i.path))
    .map((i) => {
      const parts = i.path.split('/');
      return i.path.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
    })
    .filter((name) => name !== WORKER_PROVIDED);
  return [...new Set(names)].sort();
}

/** Where Node would find `name` from `dir` (inside `root`'s node_modules tree). */
function resolvePackage(dir: string, name: string, root: string): string | undefined {
  for (let d = dir; ; d = path.dirname(d)) {
    const candidate = path.join(d, 'node_modules', name);
    if (existsSync(path.join(candidate, 'package.json'))) return candidate;
    if (d === root || d === path.dirname(d)) return undefined;
  }
}

/** Every installed package directory `names` need at run time (dependencies and optional ones). */
export function productionClosure(names: string[], root = APP_ROOT): string[] {
  const seen = new Set<string>();
  const visit = (dir: string): void => {
    if (seen.has(dir)) return;
    seen.add(dir);
    const pkg = readJson<PackageJson>(path.join(dir, 'package.json'));
    for (const dep of Object.keys({ ...pkg.dependencies, ...pkg.optionalDependencies })) {
      // An optional dependency for another platform is not installed: nothing to copy.
      const found = resolvePackage(dir, dep, root);
      if (found) visit(found);
      else if (!pkg.optionalDependencies?.[dep])
        throw new Error(`${dep} (needed by ${pkg.name}) is not installed`);
    }
  };
  for (const name of names) {
    const dir = resolvePackage(root, name, root);
    if (!dir) throw new Error(`${name} is not installed: run npm ci`);
    visit(dir);
  }
  return [...seen].sort();
}

function main(): void {
  const outIndex = process.argv.indexOf('--out');
  const out = path.resolve(
    outIndex === -1 ? path.join(APP_ROOT, 'dist', 'deploy') : process.argv[outIndex + 1]!,
  );
  const pkg = readJson<PackageJson>(path.join(APP_ROOT, 'package.json'));
  const externals = externalPackages();
  // A package the app requires that npm installs for another one (the telemetry SDK's own
  // @azure/monitor-opentelemetry, say) is pinned at the version installed.
  const versionOf = (name: string): string =>
    pkg.dependencies?.[name] ??
    readJson<PackageJson>(path.join(APP_ROOT, 'node_modules', name, 'package.json')).version;
  rmSync(out, { recursive: true, force: true });
  mkdirSync(path.join(out, 'dist', 'app'), { recursive: true });
  for (const file of ['index.js', 'index.js.map']) {
    cpSync(path.join(path.dirname(BUNDLE_FILE), file), path.join(out, 'dist', 'app', file));
  }
  cpSync(path.join(APP_ROOT, 'host.json'), path.join(out, 'host.json'));
  const deployed = {
    name: pkg.name,
    version: pkg.version,
    description: pkg.description,
    license: pkg.license,
    private: true,
    main: 'dist/app/index.js',
    engines: pkg.engines,
    dependencies: Object.fromEntries(externals.map((name) => [name, versionOf(name)])),
  };
  writeFileSync(path.join(out, 'package.json'), `${JSON.stringify(deployed, null, 2)}\n`);
  // Everything here is meant to be deployed.
  writeFileSync(path.join(out, '.funcignore'), '.funcignore\n');
  // node_modules is a real directory in a clone; the copies keep its layout (nested versions too).
  const modules = path.join(APP_ROOT, 'node_modules');
  for (const dir of productionClosure(externals)) {
    const relative = path.relative(modules, dir);
    cpSync(dir, path.join(out, 'node_modules', relative), {
      recursive: true,
      dereference: true,
      // A nested node_modules is copied as its own package, if it is needed at all.
      filter: (source) => !path.relative(dir, source).split(path.sep).includes('node_modules'),
    });
  }
  console.log(
    `${path.relative(APP_ROOT, out)}: the bundle, host.json, and ${externals.join(', ')} with what they need.`,
  );
}

if (require.main === module) {
  try {
    main();
  } catch (err) {
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(1);
  }
}
