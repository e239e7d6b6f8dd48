// One printbox, one RAW sink, REPS (default 4) jobs of 100 MiB one after another: CPU of the server per job (and of
// it, the ingest's; the client's own beside it), ingest (upload until 201), delivery (201 until the sink's last
// byte), end to end. For A/B work on the large-job path:
//   REPS=3 BENCH_PRINTBOX_ROOT=/other/clone npx tsx bench/large-job.ts   (that clone's dist/ is what runs)
// run the two sides in turns; `--server-prof=DIR` profiles the server as in bench/run.ts.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { startBenchSink, startPrintbox, largeDoc } from './peers.js';
import { printboxClient, submitPrintbox } from './clients.js';
import { phaseMeter, cpuSeconds, MiB } from './measure.js';
const reps = Number(process.env.REPS ?? 4);
const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'pb-large-'));
const sink = await startBenchSink();
const pb = await startPrintbox(path.join(tmp, 'data'));
const api = printboxClient(pb.base, pb.ca, pb.token, 32);
const r = await api.json('POST', '/v1/printers', { name: 'sink', uri: `raw://127.0.0.1:${sink.port}` });
if (r.status !== 201) throw new Error(r.text);
for (let i = 0; i < reps; i++) {
  const n = i + 1; // the document's stamp, by which the sink tells the jobs apart
  const meter = phaseMeter(pb.pid);
  const c0 = cpuSeconds(pb.pid);
  const self0 = process.cpuUsage();
  const t0 = performance.now();
  await submitPrintbox(api, 'sink', largeDoc(n, 100 * MiB));
  const t1 = performance.now();
  const c1 = cpuSeconds(pb.pid);
  const self1 = process.cpuUsage(self0);
  const a = await sink.waitIndex(n, 600000);
  const u = meter.stop();
  console.log(`rep ${i}: cpu ${(u.cpu * 1000).toFixed(0)} ms (ingest ${((c1 - c0) * 1000).toFixed(0)}, client ${((self1.user + self1.system) / 1000).toFixed(0)}); ingest ${(t1 - t0).toFixed(0)} ms; deliver ${(a.lastAt - t1).toFixed(0)} ms; e2e ${(100 * 1.048576 * 1000 / (a.lastAt - t0)).toFixed(0)} MB/s`);
}
api.close();
await pb.stop();
await sink.close();
await fs.rm(tmp, { recursive: true, force: true });
process.exit(0);
