import Module from 'node:module';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

const CORE_MODULE = '@azure/functions-core';

interface ModuleInternals {
  _resolveFilename(request: string, parent: unknown, ...rest: unknown[]): string;
}

/**
 * Serves `coreApi` as `@azure/functions-core`, as the worker does: by hooking module resolution,
 * which covers CommonJS `require` and ESM `import` of the library alike.
 */
export function provideCoreModule(coreApi: Record<string, unknown>): void {
  const internals = Module as unknown as ModuleInternals;
  const original = internals._resolveFilename.bind(Module);
  const fakePath = path.join(__dirname, '__azure_functions_core__.js');
  const cached = new Module(fakePath);
  cached.filename = fakePath;
  cached.loaded = true;
  cached.exports = coreApi;
  (require.cache as Record<string, NodeJS.Module>)[fakePath] = cached;
  internals._resolveFilename = (request: string, parent: unknown, ...rest: unknown[]) =>
    request === CORE_MODULE ? fakePath : original(request, parent, ...rest);
}

/** The files `package.json` `main` names (a path or a glob of `*` in the file name), as the worker resolves them. */
export function entryFiles(appRoot: string): string[] {
  const pkg = JSON.parse(readFileSync(path.join(appRoot, 'package.json'), 'utf8')) as { main?: string };
  const main = pkg.main ?? 'index.js';
  const absolute = path.resolve(appRoot, main);
  if (!main.includes('*')) return [absolute];
  const dir = path.dirname(absolute);
  if (!existsSync(dir))
    throw new Error(`package.json main "${main}": ${dir} does not exist (run npm run build).`);
  const pattern = new RegExp(
    '^' +
      path
        .basename(absolute)
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*/g, '.*') +
      '$',
  );
  const files = readdirSync(dir)
    .filter((f) => pattern.test(f))
    .sort()
    .map((f) => path.join(dir, f));
  if (files.length === 0) throw new Error(`package.json main "${main}" matches no file.`);
  return files;
}
