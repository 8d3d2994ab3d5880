import { execFileSync } from 'node:child_process';

// `npm run test:node -- 22 24` (CI) runs the suite on Node binaries it fetched, and says which in
// GRAPH_NOTIFY_TEST_NODE. The function host and Azurite are spawned with `process.execPath`, and
// anything started by name as `node` goes through PATH: both must be that version, or the run
// would test the machine's Node under another name.
const expected = process.env.GRAPH_NOTIFY_TEST_NODE;

(expected ? describe : describe.skip)(`under npm run test:node (${expected ?? 'not set'})`, () => {
  it('runs the tests, and what they spawn, on the Node version asked for', () => {
    expect(process.version).toBe(expected);
    expect(execFileSync(process.execPath, ['--version'], { encoding: 'utf8' }).trim()).toBe(expected);
    expect(execFileSync('node', ['--version'], { encoding: 'utf8' }).trim()).toBe(expected);
  });
});
