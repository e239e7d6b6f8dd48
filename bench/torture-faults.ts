// Torture scenario "printer faults": printers that refuse, reset mid-job, stall and jam, and a serial line that is unplugged, then all come back.
//
//   const violations = await printerFaults({ quick, canary, canaryDirs });   // prints one line starting "faults:"
//
// A real `printbox serve` child prints to misbehaving peers while jobs keep arriving. Held: every acknowledged job
// prints whole at least once, in its printer's order; a repeat only of the job in flight when a fault hit; a printer
// down long enough shows its head job as `held` with a reason, and that job prints once the printer is back.
import fs from 'node:fs/promises';
import { Api } from '../test/helpers/api.js';
import { freePort, spawnAppliance, tempDir, until, type ChildAppliance } from '../test/helpers/appliance.js';
import { startFaultSink, startSerialCapture, type FaultSink, type SerialCapture } from '../test/peers/fault-sink.js';

export interface FaultOptions {
  quick: boolean;
  canary: string;
  canaryDirs: string[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const RETRY = { limit: 3, baseMs: 100, maxMs: 400, heldRetryMs: 1000 };
// Short driver timeouts so a stalled printer turns into a retry within a second, and a held job within a few.
// A jammed printer (stops reading mid-document) is waited for, as CUPS does, but shown on the job after 1 s.
const RAW_PARAMS = 'connectTimeout=1000&closeTimeout=1000&stallNotice=1000';

/** One printer of the scenario: how it misbehaves, and its document size. */
interface Bench {
  name: string;
  kind: 'refuse' | 'reset' | 'stall' | 'jam' | 'unplug';
  docSize: number;
  jobs: number;
  uri: string;
  sink?: FaultSink;
  line?: SerialCapture;
  id?: string;
  acked: string[]; // labels, in acknowledgement order (= posting order: one client per printer)
  faults: number; // fault windows applied
  heldSeen: Map<string, string>; // job id → reason, seen while polling
  heldPolls: number; // polls that found a held job on this printer
  heldWindows: number; // fault windows during which a held job was seen
  longestSending: number; // ms the same job was seen 'sending' in a row
  unplugs: number[]; // when the serial cable came out
  inLine: number; // jobs reported sent that were still inside the line when it was unplugged
}

/** A document that names itself at both ends, carries the canary, and whose bytes follow from its label alone. */
export function faultDoc(label: string, size: number, canary: string): Buffer {
  const head = Buffer.from(`<<JOB ${label}|${canary}|`);
  const tail = Buffer.from(`>>END ${label}\n`);
  const doc = Buffer.alloc(size, `${label}.`);
  head.copy(doc, 0);
  tail.copy(doc, size - tail.length);
  return doc;
}

const labelOf = (d: Buffer) => /^<<JOB ([^|]{1,40})\|/.exec(d.subarray(0, 64).toString('latin1'))?.[1];

/** Splits one serial session into whole documents and torn fragments (a fragment is legal only at the session's end). */
function parseSerial(buf: Buffer, size: number, canary: string) {
  const docs: string[] = [];
  const fragments: { label?: string; bytes: number; tail: boolean; diff: string }[] = [];
  const marker = Buffer.from('<<JOB ');
  let o = 0;
  while (o < buf.length) {
    const label = buf.subarray(o, o + 6).equals(marker) ? labelOf(buf.subarray(o)) : undefined;
    if (label && o + size <= buf.length && buf.subarray(o, o + size).equals(faultDoc(label, size, canary))) {
      docs.push(label);
      o += size;
      continue;
    }
    const next = buf.indexOf(marker, o + 1);
    const end = next < 0 ? buf.length : next;
    // Where the fragment first departs from its document says whether bytes were cut off, lost inside, or mixed in.
    let diff = '';
    if (label) {
      const want = faultDoc(label, size, canary);
      let k = 0;
      while (k < end - o && k < size && buf[o + k] === want[k]) k++;
      diff = k === end - o ? `, a prefix of ${size} bytes` : `, first difference at byte ${k} (${JSON.stringify(buf.subarray(o + k, o + k + 12).toString('latin1'))} where ${JSON.stringify(want.subarray(k, k + 12).toString('latin1'))} was sent)`;
    }
    fragments.push({ label, bytes: end - o, tail: next < 0, diff });
    o = end;
  }
  return { docs, fragments };
}

/** First prints must follow posting order; a repeat is legal only right after itself (the job in flight, sent again). */
function checkSequence(name: string, printed: string[], problems: string[]) {
  const seen = new Set<string>();
  let maxIndex = -1;
  let prev: string | undefined;
  let duplicated = 0;
  let outOfOrder = 0;
  for (const l of printed) {
    const i = Number(l.split('-')[1]);
    if (seen.has(l)) {
      duplicated++;
      if (l !== prev) problems.push(`${name}: ${l} printed again after ${prev} (only the job in flight may repeat)`);
    } else {
      if (i < maxIndex) outOfOrder++;
      maxIndex = Math.max(maxIndex, i);
      seen.add(l);
    }
    prev = l;
  }
  return { seen, duplicated, outOfOrder };
}

export async function printerFaults(opts: FaultOptions): Promise<string[]> {
  const t0 = Date.now();
  const P = opts.quick
    ? { jobs: 24, jamJobs: 6, postEveryMs: 400, rounds: 1, firstOkMs: 1500, faultMs: 5000, okMs: 3000, drainMs: 40_000 }
    : { jobs: 110, jamJobs: 24, postEveryMs: 500, rounds: 4, firstOkMs: 3000, faultMs: 7000, okMs: 6000, drainMs: 90_000 };
  const violations: string[] = [];
  const dataDir = await tempDir('pbx-torture-faults-');
  opts.canaryDirs.push(dataDir);
  const port = await freePort();
  const benches: Bench[] = [
    { name: 'refuse', kind: 'refuse', docSize: 8 * 1024, jobs: P.jobs },
    { name: 'reset', kind: 'reset', docSize: 8 * 1024, jobs: P.jobs },
    { name: 'stall', kind: 'stall', docSize: 8 * 1024, jobs: P.jobs },
    // Big documents: the printer stops reading part-way through one, so the sender blocks mid-document.
    { name: 'jam', kind: 'jam', docSize: 4 * 1024 * 1024, jobs: P.jamJobs },
    { name: 'serial', kind: 'unplug', docSize: 4 * 1024, jobs: P.jobs },
  ].map((b) => ({ ...b, uri: '', acked: [], faults: 0, heldSeen: new Map(), heldPolls: 0, heldWindows: 0, longestSending: 0, unplugs: [], inLine: 0 }) as Bench);
  let box: ChildAppliance | undefined;
  let api: Api | undefined;
  let posted = 0;
  let watching = true;
  const stats = { printed: 0, lost: 0, inLine: 0, duplicated: 0, outOfOrder: 0 };
  try {
    for (const b of benches) {
      if (b.kind === 'unplug') {
        b.line = await startSerialCapture();
        b.uri = `serial://${b.line.path}?baud=115200`;
      } else {
        b.sink = await startFaultSink();
        b.uri = `raw://127.0.0.1:${b.sink.port}?${RAW_PARAMS}`;
      }
    }
    box = await spawnAppliance(dataDir, port);
    api = new Api(`https://127.0.0.1:${port}`, await fs.readFile(`${dataDir}/tls/cert.pem`, 'utf8'), box.token!, 16);
    for (const b of benches) {
      const r = await api.json('POST', '/v1/printers', { name: b.name, uri: b.uri, retry: RETRY });
      if (r.status !== 201) throw new Error(`adding printer ${b.name}: ${r.status} ${r.text}`);
      b.id = r.json.id;
    }
    const byId = new Map(benches.map((b) => [b.id!, b]));
    const label = (b: Bench, i: number) => `${b.name}-${String(i).padStart(4, '0')}`;

    // One client per printer, posting at a steady pace, so jobs keep arriving before, during and after each fault.
    async function client(b: Bench) {
      for (let i = 0; i < b.jobs; i++) {
        const l = label(b, i);
        posted++;
        const r = await api!.postJob({ printer: b.name, title: l, contentType: 'raw' }, faultDoc(l, b.docSize, opts.canary));
        if (r.status !== 201) throw new Error(`posting ${l}: ${r.status} ${r.text.slice(0, 200)}`);
        b.acked.push(l);
        await sleep(b.kind === 'jam' ? P.postEveryMs * (P.jobs / P.jamJobs) : P.postEveryMs);
      }
    }

    // Each printer follows the same schedule: fine, fault, fine, …; stalls end in a power cycle (the jam cleared).
    async function misbehave(b: Bench) {
      await sleep(P.firstOkMs);
      for (let r = 0; r < P.rounds; r++) {
        b.faults++;
        if (b.kind === 'refuse') await b.sink!.setMode('refuse');
        else if (b.kind === 'reset') await b.sink!.setMode('reset', 2000);
        else if (b.kind === 'stall' || b.kind === 'jam') await b.sink!.setMode('stall');
        else {
          b.unplugs.push(Date.now());
          await b.line!.unplug();
        }
        const heldBefore = b.heldPolls;
        await sleep(P.faultMs);
        // On a busy machine the job that meets the fault may start late in the window (a 4 MiB jam job is still
        // uploading): the fault lasts until the API has shown it, up to 4 windows, so what is checked is that it
        // shows, not how soon.
        await until('the fault shown on a job', () => b.heldPolls > heldBefore, 3 * P.faultMs, 200).catch(() => {});
        if (b.heldPolls > heldBefore) b.heldWindows++;
        if (b.kind === 'stall' || b.kind === 'jam') {
          await b.sink!.setMode('normal');
          b.sink!.powerCycle();
        } else if (b.kind === 'unplug') await b.line!.plugIn();
        else await b.sink!.setMode('normal');
        await sleep(P.okMs);
      }
    }

    // Watches what the API shows: held jobs and their reasons, and how long one job stays 'sending'.
    const sendingSince = new Map<string, { id: string; since: number }>();
    async function watcher() {
      while (watching) {
        const held = await api!.request('GET', '/v1/jobs?state=held&limit=1000').catch(() => null);
        const heldOn = new Set<Bench>();
        for (const j of held?.json?.jobs ?? []) {
          const b = byId.get(j.printer);
          if (!b) continue;
          if (!heldOn.has(b)) b.heldPolls++;
          heldOn.add(b);
          if (b.heldSeen.has(j.jobID)) continue;
          b.heldSeen.set(j.jobID, j.reason ?? '');
          if (!j.reason) violations.push(`${b.name}: job ${j.title} is held with no reason`);
        }
        const sending = await api!.request('GET', '/v1/jobs?state=sending&limit=1000').catch(() => null);
        const now = Date.now();
        const current = new Map<string, string>();
        const stalledOn = new Set<Bench>();
        for (const j of sending?.json?.jobs ?? []) {
          current.set(j.printer, j.jobID);
          // A jam is waited out, not retried (a retry would print part of the document twice): what must be
          // visible is the job still sending with the printer's condition as its reason.
          const b = byId.get(j.printer);
          if (b?.kind === 'jam' && /taken no data/.test(j.reason ?? '') && !stalledOn.has(b)) {
            stalledOn.add(b);
            b.heldPolls++;
            if (!b.heldSeen.has(j.jobID)) b.heldSeen.set(j.jobID, j.reason);
          }
        }
        for (const b of benches) {
          const id = current.get(b.id!);
          const prev = sendingSince.get(b.id!);
          if (!id) sendingSince.delete(b.id!);
          else if (prev?.id !== id) sendingSince.set(b.id!, { id, since: now });
          else b.longestSending = Math.max(b.longestSending, now - prev.since);
        }
        await sleep(200);
      }
    }

    const watch = watcher();
    await Promise.all([...benches.map(client), ...benches.map(misbehave)]);

    // Everything is back: every acknowledged job must reach its printer.
    const printedNow = (b: Bench): string[] => {
      if (b.sink) return b.sink.jobs.map((j) => labelOf(j.data) ?? '?');
      return b.line!.sessions().flatMap((s) => parseSerial(s, b.docSize, opts.canary).docs);
    };
    const drainStart = Date.now();
    await until('every acknowledged job printed', () => benches.every((b) => { const p = new Set(printedNow(b)); return b.acked.every((l) => p.has(l)); }), P.drainMs, 250).catch(() => {});
    const drainMs = Date.now() - drainStart;
    await sleep(300); // a late duplicate would show up now
    watching = false;
    await watch;

    const left = await api.request('GET', '/v1/jobs?limit=1000');
    const finalJobs: { jobID: string; title: string; state: string; reason?: string; finishedAt?: string }[] = left.json?.jobs ?? [];
    for (const b of benches) {
      const problems: string[] = [];
      let printed: string[];
      if (b.sink) {
        printed = [];
        for (const j of b.sink.jobs) {
          const l = labelOf(j.data);
          if (!l || !j.data.equals(faultDoc(l, b.docSize, opts.canary))) problems.push(`${b.name}: a torn or foreign document of ${j.size} bytes reached the printer`);
          else printed.push(l);
        }
      } else {
        printed = [];
        const sessions = b.line!.sessions();
        for (const [n, s] of sessions.entries()) {
          const { docs, fragments } = parseSerial(s, b.docSize, opts.canary);
          printed.push(...docs);
          // The job in flight when the cable came out leaves a fragment at the end of that session, nowhere else.
          for (const f of fragments) {
            if (f.tail && n < sessions.length - 1) continue;
            // Seen here: the last bytes of a job vanish when the next job opens the port. serialport's open flushes
            // the line (tcflush TCIOFLUSH), and on a pty tcdrain returns before the reader has the bytes.
            const why = !f.tail && f.diff.includes('a prefix') ? `, its last ${b.docSize - f.bytes} bytes discarded when the next job opened the port` : '';
            problems.push(`${b.name}: torn fragment of ${f.bytes} bytes (${f.label ?? 'unlabelled'}${f.diff}) in line session ${n}${f.tail ? ' at its end' : ' followed by more documents'}${why}`);
          }
        }
      }
      const seq = checkSequence(b.name, printed, problems);
      let lost = b.acked.filter((l) => !seq.seen.has(l));
      // A serial line has no acknowledgement: bytes the port had drained into the pty but socat had not read yet
      // die with the cable. Such a job was reported sent just before an unplug; it is counted, not hidden.
      const inLine = (l: string) => {
        const j = finalJobs.find((x) => x.title === l);
        const at = j?.state === 'sent' && j.finishedAt ? Date.parse(j.finishedAt) : NaN;
        return b.unplugs.some((u) => Math.abs(u - at) < 250);
      };
      b.inLine = lost.filter(inLine).length;
      lost = lost.filter((l) => !inLine(l));
      const phantom = [...seq.seen].filter((l) => !b.acked.includes(l));
      if (lost.length) problems.push(`${b.name}: lost ${lost.length}: ${lost.slice(0, 5).join(', ')}${lost.length > 5 ? ' …' : ''}`);
      if (phantom.length) problems.push(`${b.name}: printed ${phantom.length} jobs that were never acknowledged`);
      if (seq.outOfOrder) problems.push(`${b.name}: ${seq.outOfOrder} out of order`);
      if (seq.duplicated > b.faults) problems.push(`${b.name}: ${seq.duplicated} repeats for ${b.faults} faults`);
      if (b.acked.length !== b.jobs) problems.push(`${b.name}: only ${b.acked.length} of ${b.jobs} jobs acknowledged`);
      // Down for longer than three attempts take, the head job must have been shown as held, every time.
      if (b.heldWindows < b.faults) {
        const stuck = b.longestSending > P.faultMs / 2 ? `; one job stayed 'sending' with no reason for ${(b.longestSending / 1000).toFixed(1)} s of a ${(P.faultMs / 1000).toFixed(1)} s fault` : '';
        problems.push(`${b.name}: a held job was visible in ${b.heldWindows} of ${b.faults} fault windows${stuck}`);
      }
      stats.printed += seq.seen.size - phantom.length;
      stats.lost += lost.length;
      stats.inLine += b.inLine;
      stats.duplicated += seq.duplicated;
      stats.outOfOrder += seq.outOfOrder;
      violations.push(...problems);
    }

    // After the drain nothing may be left held or unfinished.
    const finalState = new Map<string, string>(finalJobs.map((j) => [j.jobID, j.state]));
    const heldIds = benches.flatMap((b) => [...b.heldSeen.keys()]);
    const heldPrinted = heldIds.filter((id) => finalState.get(id) === 'sent').length;
    if (heldPrinted < heldIds.length) violations.push(`${heldIds.length - heldPrinted} of ${heldIds.length} jobs seen held were not sent once their printer came back`);
    const unfinished = finalJobs.filter((j) => !['sent', 'confirmed'].includes(j.state));
    if (unfinished.length) violations.push(`${unfinished.length} jobs not sent after the drain: ${unfinished.slice(0, 5).map((j: { title: string; state: string; reason?: string }) => `${j.title} ${j.state} (${j.reason ?? ''})`).join('; ')}`);

    const acked = benches.reduce((n, b) => n + b.acked.length, 0);
    const held = benches.map((b) => `${b.name} ${b.heldSeen.size}`).join(', ');
    const faults = benches.reduce((n, b) => n + b.faults, 0);
    console.log(`faults: posted ${posted}, acknowledged ${acked}, printed ${stats.printed}, lost ${stats.lost}${stats.inLine ? ` (+${stats.inLine} sent <250 ms before the serial cable came out)` : ''}, duplicated ${stats.duplicated}, out of order ${stats.outOfOrder}; ${faults} faults on ${benches.length} printers, held or stalled seen (${held}) and ${heldPrinted} of them sent after the printer came back, drain ${(drainMs / 1000).toFixed(1)} s, elapsed ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  } catch (err) {
    violations.push(`aborted: ${(err as Error).message}`);
    console.log(`faults: aborted after ${posted} posted, elapsed ${((Date.now() - t0) / 1000).toFixed(1)} s: ${(err as Error).message}`);
  } finally {
    watching = false;
    api?.close();
    await box?.stop().catch(() => {});
    for (const b of benches) {
      await b.sink?.close().catch(() => {});
      await b.line?.close().catch(() => {});
    }
  }
  return violations.map((v) => `faults: ${v}`);
}
