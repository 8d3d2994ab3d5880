import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
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

/** Where a fixture app posts what it saw (JSON bodies), each handed to `onReport`; loopback only. */
export async function startReportServer<T>(
  onReport: (report: T) => void,
): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      onReport(JSON.parse(Buffer.concat(chunks).toString('utf8')) as T);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
