import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import path from 'node:path';

// What a clone of this repository must hold on its own: every package the code imports is declared
// (not merely present because something else pulled it in), and no comment or document sends the
// reader to a file outside the repository.

const ROOT = path.resolve(__dirname, '..', '..');
const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

function tracked(...patterns: string[]): string[] {
  return execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '--', ...patterns], {
    cwd: ROOT,
    encoding: 'utf8',
  })
    .split('\n')
    .filter(Boolean);
}

/** The package a bare import names (`@scope/name/sub` → `@scope/name`), or undefined for a path or builtin. */
function packageOf(specifier: string): string | undefined {
  if (specifier.startsWith('.') || specifier.startsWith('node:') || builtinModules.includes(specifier)) {
    return undefined;
  }
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

function importsOf(file: string): string[] {
  const text = readFileSync(path.join(ROOT, file), 'utf8');
  const found = [
    ...text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'";]*?from\s+['"]([^'"]+)['"]/g),
    ...text.matchAll(/(?:^|\n)\s*import\s+['"]([^'"]+)['"]/g),
    ...text.matchAll(/\b(?:require|import)\(\s*['"]([^'"]+)['"]\s*\)/g),
  ].map((m) => m[1]!);
  return found.map(packageOf).filter((p): p is string => p !== undefined);
}

it('declares every package the shipped code imports as a dependency', () => {
  const undeclared = tracked('functions/*.ts', 'shared/**/*.ts').flatMap((file) =>
    importsOf(file)
      // Provided by the Functions worker at run time, never installed.
      .filter((p) => p !== '@azure/functions-core' && !(p in pkg.dependencies))
      .map((p) => `${file}: ${p}`),
  );
  expect(undeclared).toEqual([]);
});

/** Whether a package is installed here: one that is not (a test's throwaway module) cannot be hoisted in. */
function installed(name: string): boolean {
  for (const request of [`${name}/package.json`, name]) {
    try {
      require.resolve(request, { paths: [ROOT] });
      return true;
    } catch {
      // Not this way: an `exports` map may hide package.json, and an ES-only package its main.
    }
  }
  return existsSync(path.join(ROOT, 'node_modules', name, 'package.json'));
}

it('declares every package the tooling and tests import (dependencies or devDependencies)', () => {
  const declared = { ...pkg.dependencies, ...pkg.devDependencies };
  const undeclared = tracked('dev/**/*.ts', 'bench/**/*.ts', 'test/**/*.ts').flatMap((file) =>
    importsOf(file)
      .filter((p) => p !== '@azure/functions-core' && !(p in declared) && installed(p))
      .map((p) => `${file}: ${p}`),
  );
  expect(undeclared).toEqual([]);
});

it('refers only to files in this repository (no notes kept beside it)', () => {
  const outside = /\bPITFALLS\b|\b(?:CONTRACT|STYLE|TEAMS)\.md\b/;
  const offenders = tracked('*.ts', '*.md', '*.json', '*.mjs', '*.js')
    .filter((file) => file !== 'package-lock.json' && file !== 'test/unit/repository.test.ts')
    .filter((file) => outside.test(readFileSync(path.join(ROOT, file), 'utf8')));
  expect(offenders).toEqual([]);
});
