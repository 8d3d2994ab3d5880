import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

/**
 * Builds a fixture function app (`index.ts`, `package.json`, `host.json` in `source`) into
 * `target`, as the local host loads an app: CommonJS JavaScript beside its package.json.
 */
export function buildFixtureApp(source: string, target: string): void {
  mkdirSync(target, { recursive: true });
  const { outputText } = ts.transpileModule(readFileSync(path.join(source, 'index.ts'), 'utf8'), {
    compilerOptions: {
      module: ts.ModuleKind.CommonJS,
      target: ts.ScriptTarget.ES2022,
      esModuleInterop: true,
    },
  });
  writeFileSync(path.join(target, 'index.js'), outputText);
  for (const file of ['package.json', 'host.json']) {
    copyFileSync(path.join(source, file), path.join(target, file));
  }
}
