// Loaded into the local host with NODE_OPTIONS=--require (Node 20 refuses --cpu-prof there): starts
// V8's sampling profiler as the process starts and writes the profile to BENCH_CPU_PROFILE_FILE as
// the process exits. The same-thread inspector session answers synchronously, so the 'exit' handler
// can stop the profiler and write the file.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';

const file = process.env.BENCH_CPU_PROFILE_FILE;
if (file) {
  const session = new Session();
  session.connect();
  session.post('Profiler.enable');
  // 1 ms between samples (V8's default is 1 ms with --cpu-prof too).
  session.post('Profiler.setSamplingInterval', { interval: 1000 });
  session.post('Profiler.start');
  process.once('exit', () => {
    session.post('Profiler.stop', (err, result) => {
      if (!err) writeFileSync(file, JSON.stringify(result.profile));
    });
  });
}
