import { spawn } from 'node:child_process';
import { ensureLocalTls, trustedCaFile } from './tls';

// Node reads NODE_EXTRA_CA_CERTS only when a process starts, so the CA must exist before the
// process that trusts it (jest and its workers) is spawned. A CA the environment already names
// (a TLS-inspecting proxy, say) stays trusted: the command gets a bundle of both.
async function main(): Promise<void> {
  const [command, ...args] = process.argv.slice(2);
  if (!command) throw new Error('usage: node dist/dev/with-ca.js <command> [args…]');
  const caPath = trustedCaFile(process.env.NODE_EXTRA_CA_CERTS, await ensureLocalTls());
  const child = spawn(command, args, {
    stdio: 'inherit',
    shell: process.platform === 'win32',
    env: { ...process.env, NODE_EXTRA_CA_CERTS: caPath },
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
