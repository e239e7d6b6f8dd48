// Torture scenario "disk full": the data dir on a small tmpfs fills up, first to the free-space floor, then to the last byte.
//
//   const violations = await diskFull({ quick, canary, canaryDirs });   // prints one line starting "disk:"; needs root (mount)
//
// A real `printbox serve` child takes uploads until intake refuses. Held: every refusal is a JSON 507 (never a 500,
// a reset or a hang); no temp file is left; after a filler file is deleted intake answers 201 again; the server
// restarts on the data dir it filled; and every acknowledged job then prints byte-identical, once, in order.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Api, type ApiReply } from '../test/helpers/api.js';
import { filesUnder, freePort, spawnAppliance, tempDir, until, type ChildAppliance } from '../test/helpers/appliance.js';
import { startSink, type Sink } from '../test/peers/tcp-sink.js';

export interface DiskOptions {
  quick: boolean;
  canary: string;
  canaryDirs: string[];
}

const MiB = 1024 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What one upload got back: a reply, or a transport error / no answer in time. */
type Answer = { status: number; code?: string; message?: string } | { error: string };

function withDeadline(p: Promise<ApiReply>, ms: number): Promise<ApiReply> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

export async function diskFull(opts: DiskOptions): Promise<string[]> {
  const t0 = Date.now();
  const P = opts.quick
    ? { sizeMiB: 32, clients: 4, floorMiB: 12, fillerMiB: 4, cycles: 1, maxDocKiB: 256, drainMs: 60_000 }
    : { sizeMiB: 64, clients: 8, floorMiB: 16, fillerMiB: 6, cycles: 3, maxDocKiB: 512, drainMs: 120_000 };
  const violations: string[] = [];
  const dir = await tempDir('pbx-torture-disk-');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${P.sizeMiB}m,mode=0700`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (err) {
    await fs.rm(dir, { recursive: true, force: true });
    console.log(`disk: not run: cannot mount a tmpfs (needs root): ${(err as Error).message.split('\n')[0]}`);
    return [`disk: cannot mount a ${P.sizeMiB} MiB tmpfs on ${dir} (needs root)`];
  }
  const port = await freePort();
  let box: ChildAppliance | undefined;
  let api: Api | undefined;
  let sink: Sink | undefined;
  const expected = new Map<string, string>(); // label → sha256 of the document, for every acknowledged job
  const ackOrder = new Map<number, number[]>(); // client → indexes acknowledged, in order
  let posted = 0;
  const answers = { floor507: 0, full507: 0, other: new Map<string, number>() };
  let resumed = 0;
  let fullFree = Infinity;
  let freeAtFloor = 0;
  let resumeTries = 0;
  let restartOk = false;
  const stats = { printed: 0, lost: 0, duplicated: 0, outOfOrder: 0 };
  const next = new Map<number, number>(); // client → next job index
  const label = (c: number, i: number) => `c${c}-${String(i).padStart(5, '0')}`;

  let oldLogs = '';
  const serverLog = () => oldLogs + (box?.output() ?? '');
  const start = async (floor: number) => {
    oldLogs += box?.output() ?? '';
    box = undefined;
    box = await spawnAppliance(dir, port, { PRINTBOX_MIN_FREE_BYTES: String(floor) });
    api?.close();
    api = new Api(`https://127.0.0.1:${port}`, await fs.readFile(`${dir}/tls/cert.pem`, 'utf8'), token || box.token!, 16);
    token ||= box.token!;
  };
  let token = '';
  const freeBytes = async () => {
    const s = await fs.statfs(dir);
    return s.bavail * s.bsize;
  };

  /** Posts one job; 201 records it as acknowledged, a JSON 507 is counted, anything else is a violation. */
  async function postOne(c: number, size: number): Promise<Answer> {
    const i = next.get(c) ?? 0;
    next.set(c, i + 1);
    const l = label(c, i);
    const doc = Buffer.concat([Buffer.from(`${l}|${opts.canary}|`), randomBytes(size)]);
    posted++;
    let r: ApiReply;
    try {
      r = await withDeadline(api!.postJob({ printer: 'p', title: l, contentType: 'raw' }, doc), 30_000);
    } catch (err) {
      const e = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      answers.other.set(`transport ${e}`, (answers.other.get(`transport ${e}`) ?? 0) + 1);
      return { error: String(e) };
    }
    if (r.status === 201) {
      expected.set(l, createHash('sha256').update(doc).digest('hex'));
      ackOrder.set(c, [...(ackOrder.get(c) ?? []), i]);
      return { status: 201 };
    }
    const code = r.json?.error?.code;
    const message = r.json?.error?.message;
    if (r.status === 507 && code === 'insufficient_storage') {
      if (/below its floor/.test(message ?? '')) answers.floor507++;
      else answers.full507++;
    } else {
      const k = `${r.status} ${code ?? r.text.slice(0, 60)}`;
      answers.other.set(k, (answers.other.get(k) ?? 0) + 1);
    }
    return { status: r.status, code, message };
  }

  /** Clients post documents of mixed sizes until each has been refused three times in a row (bounded). */
  async function fillUp(budget: number, clients: number, maxKiB: number, pauseMs = 0) {
    let left = budget;
    await Promise.all(
      Array.from({ length: clients }, async (_, c) => {
        let refusals = 0;
        while (refusals < 3 && left-- > 0) {
          // After a refusal, smaller documents probe the last free bytes.
          const size = refusals ? 1024 + Math.floor(Math.random() * 16 * 1024) : 16 * 1024 + Math.floor(Math.random() * (maxKiB - 16) * 1024);
          const a = await postOne(c, size);
          refusals = 'status' in a && a.status === 201 ? 0 : refusals + 1;
          if (pauseMs) await sleep(pauseMs);
        }
      }),
    );
    if (left <= 0) violations.push(`intake never refused within ${budget} uploads (free ${(await freeBytes()) / MiB} MiB)`);
  }

  /** For a journal that no longer loads: where the damage sits in the file (near its end: a torn write?). */
  async function journalDamage(msg: string): Promise<string> {
    const file = `${dir}/spool/journal.log`;
    const rec = /damaged at record (\d+) \(byte (\d+)\)/.exec(msg);
    if (rec) {
      const size = (await fs.stat(file).catch(() => undefined))?.size;
      return size === undefined ? '' : `; record ${rec[1]} starts at byte ${rec[2]} of ${size} (${size - Number(rec[2])} bytes before the end of the file)`;
    }
    // Journals from before the binary format: one JSON line per record.
    const n = Number(/damaged at line (\d+)/.exec(msg)?.[1]);
    if (!n) return '';
    const lines = (await fs.readFile(file, 'latin1').catch(() => '')).split('\n');
    const lens = lines.filter(Boolean).map((l) => l.length).sort((a, b) => a - b);
    return `; line ${n} is ${lines[n - 1]?.length} characters where the median record is ${lens[lens.length >> 1]}`;
  }

  async function tempFilesLeft(when: string) {
    const files = (await filesUnder(dir).catch(() => [] as string[])).map((f) => path.relative(dir, f));
    const left = files.filter((f) => f.startsWith(`spool${path.sep}tmp${path.sep}`) || /\.(part|tmp|compact)$/.test(f));
    if (left.length) violations.push(`${left.length} temp files left ${when}: ${left.slice(0, 3).join(', ')}`);
  }

  /** Frees a filler file and expects intake back within a few seconds (the free-space check is cached for 1 s). */
  async function freeAndResume(filler: string) {
    const freed = (await fs.stat(filler)).size;
    resumeTries++;
    await fs.rm(filler);
    const deadline = Date.now() + 5000;
    let last: Answer | undefined;
    while (Date.now() < deadline) {
      last = await postOne(0, 8 * 1024);
      if ('status' in last && last.status === 201) {
        for (let k = 0; k < 3; k++) {
          const a = await postOne(0, 64 * 1024);
          if (!('status' in a) || a.status !== 201) return void violations.push(`after freeing ${freed / MiB} MiB a 64 KiB upload got ${JSON.stringify(a)}`);
        }
        resumed++;
        return;
      }
      await sleep(300);
    }
    violations.push(`intake did not resume within 5 s of freeing ${freed / MiB} MiB (${((await freeBytes()) / MiB).toFixed(1)} MiB free now): last answer ${JSON.stringify(last)}`);
  }

  try {
    // The first filler is as big as the floor: intake may overshoot the floor by what arrives within a second.
    const fillers = Array.from({ length: P.cycles + 1 }, (_, k) => `${dir}/filler-${k}`);
    for (const [k, f] of fillers.entries()) await fs.writeFile(f, Buffer.alloc((k ? P.fillerMiB : P.floorMiB) * MiB, 0xa5));
    sink = await startSink();

    // 1. The floor: intake refuses while the free space is still above zero.
    await start(P.floorMiB * MiB);
    const r = await api!.json('POST', '/v1/printers', { name: 'p', uri: `raw://127.0.0.1:${sink.port}`, enabled: false });
    if (r.status !== 201) throw new Error(`adding printer: ${r.status} ${r.text}`);
    // Paced (about 5 MiB/s): the free-space check is cached for a second, so a faster flood overshoots any floor.
    await fillUp(4000, 2, 64, 10);
    freeAtFloor = await freeBytes();
    if (answers.floor507 === 0) violations.push('no 507 "below its floor" at the free-space floor');
    if (answers.full507) violations.push(`the floor did not keep the disk from filling: ${answers.full507} uploads hit a full disk, ${(freeAtFloor / MiB).toFixed(1)} MiB free`);
    await tempFilesLeft('after intake stopped at the floor');
    await freeAndResume(fillers[0]);

    // 2. A truly full filesystem: no floor, so the writes themselves hit ENOSPC.
    await box!.stop();
    await start(0);
    for (let k = 1; k <= P.cycles; k++) {
      const before = answers.full507;
      await fillUp(8000, P.clients, P.maxDocKiB);
      fullFree = Math.min(fullFree, await freeBytes());
      if (answers.full507 === before) violations.push(`cycle ${k}: no 507 once the disk was full (free ${((await freeBytes()) / 1024).toFixed(0)} KiB)`);
      await tempFilesLeft(`after the disk filled (cycle ${k})`);
      await freeAndResume(fillers[k]);
    }

    // 3. Print everything: byte-identical, once, in each client's order.
    const p = await api!.json('PATCH', '/v1/printers/p', { enabled: true });
    if (p.status !== 200) throw new Error(`enabling the printer: ${p.status} ${p.text}`);
    // Done when every acknowledged job reached the sink, or nothing is left to send (a job that failed stays lost).
    const idle = async () => {
      for (const st of ['queued', 'sending', 'held']) if ((await api!.request('GET', `/v1/jobs?state=${st}&limit=1`)).json?.jobs?.length) return false;
      return true;
    };
    await until('every acknowledged job printed', async () => sink!.jobs.length >= expected.size || (await idle()), P.drainMs, 100).catch(() => {});
    await sleep(300);
    const printed = new Map<string, number>();
    const perClient = new Map<number, number[]>();
    for (const j of sink.jobs) {
      const l = j.data!.subarray(0, 40).toString('latin1').split('|')[0];
      if (!expected.has(l)) {
        violations.push(`${l || 'an unlabelled document'} (${j.size} bytes) printed although its upload was refused`);
        continue;
      }
      if (expected.get(l) !== j.sha256) {
        violations.push(`${l || 'an unlabelled document'} (${j.size} bytes) printed with the wrong bytes`);
        continue;
      }
      printed.set(l, (printed.get(l) ?? 0) + 1);
      const [, c, i] = /^c(\d+)-(\d+)$/.exec(l)!.map(Number);
      if (printed.get(l) === 1) perClient.set(c, [...(perClient.get(c) ?? []), i]);
    }
    for (const [, list] of perClient) for (let k = 1; k < list.length; k++) if (list[k] < list[k - 1]) stats.outOfOrder++;
    stats.printed = printed.size;
    stats.duplicated = [...printed.values()].reduce((n, v) => n + v - 1, 0);
    const lost = [...expected.keys()].filter((l) => !printed.has(l));
    stats.lost = lost.length;
    if (lost.length) {
      const why = await Promise.all(lost.slice(0, 3).map(async (l) => (await api!.request('GET', `/v1/jobs?limit=1000&state=failed`)).json?.jobs?.find((j: { title: string }) => j.title === l)));
      violations.push(`acknowledged but lost ${lost.length}: ${lost.slice(0, 3).map((l, k) => `${l}${why[k] ? ` failed: ${why[k].reason}` : ''}`).join('; ')}`);
    }
    if (stats.duplicated) violations.push(`${stats.duplicated} duplicates`);
    if (stats.outOfOrder) violations.push(`${stats.outOfOrder} out of order`);
    await until('sealed documents removed after printing', async () => (await filesUnder(`${dir}/spool/docs`)).length === 0, 5000).catch(async () =>
      violations.push(`${(await filesUnder(`${dir}/spool/docs`)).length} sealed documents left after every job printed`),
    );
    // 4. The data dir that filled up must still load: a torn journal line or document would show here.
    await box!.stop();
    try {
      await start(0);
      restartOk = true;
    } catch (err) {
      const msg = (err as Error).message;
      violations.push(`the server does not start on the data dir that filled up: ${/printbox: (journal .*)/.exec(msg)?.[1] ?? msg.slice(-300).trim()}${await journalDamage(msg)}`);
    }
    const states = new Map<string, string>();
    for (let cursor: number | null = 0; restartOk && cursor !== null; ) {
      const page: ApiReply = await api!.request('GET', `/v1/jobs?limit=1000${cursor ? `&cursor=${cursor}` : ''}`);
      for (const j of page.json?.jobs ?? []) states.set(j.title, j.reason ? `${j.state} (${j.reason})` : j.state);
      cursor = page.json?.nextCursor ?? null;
    }
    const notSent = [...expected.keys()].filter((l) => states.get(l) !== 'sent');
    if (restartOk && notSent.length) violations.push(`${notSent.length} printed jobs not 'sent' after the restart: ${notSent.slice(0, 5).map((l) => `${l} ${states.get(l) ?? 'missing'}`).join(', ')}`);
    const phantoms = [...states.keys()].filter((l) => !expected.has(l));
    if (phantoms.length) violations.push(`${phantoms.length} refused uploads exist as jobs: ${phantoms.slice(0, 5).join(', ')}`);

    await tempFilesLeft('at the end');

    const other = [...answers.other].map(([k, n]) => `${n}× ${k}`);
    if (other.length) {
      // The server's own account of its 500s: which error escaped the 507 mapping.
      const errs = serverLog().split('\n').filter((l) => l.includes('"request failed"')).map((l) => { try { const e = JSON.parse(l).err; return `${e?.code ?? ''} ${e?.message ?? ''}`.trim(); } catch { return '?'; } });
      const kinds = [...new Set(errs)].slice(0, 3).join(' | ');
      violations.push(`answers other than 201 or a JSON 507: ${other.join(', ')}${kinds ? ` (server log: ${kinds})` : ''}`);
    }
    console.log(
      `disk: posted ${posted}, acknowledged ${expected.size}, printed ${stats.printed}, lost ${stats.lost}, duplicated ${stats.duplicated}, out of order ${stats.outOfOrder}; ` +
        `${P.sizeMiB} MiB tmpfs, 507 at the ${P.floorMiB} MiB floor ${answers.floor507} (${(freeAtFloor / MiB).toFixed(1)} MiB free), 507 on a full disk ${answers.full507} (${(fullFree / 1024).toFixed(0)} KiB free), other answers ${other.length ? other.join(', ') : 0}, ` +
        `intake resumed ${resumed}/${resumeTries}, restart ${restartOk ? 'ok' : 'FAILED'}, elapsed ${((Date.now() - t0) / 1000).toFixed(1)} s`,
    );
  } catch (err) {
    violations.push(`aborted: ${(err as Error).message.slice(0, 500)}`);
    console.log(`disk: aborted after ${posted} posted, ${expected.size} acknowledged, elapsed ${((Date.now() - t0) / 1000).toFixed(1)} s: ${(err as Error).message.slice(0, 300)}`);
  } finally {
    api?.close();
    await box?.stop().catch(() => {});
    await sink?.close().catch(() => {});
    // The secrets scan runs after every scenario: keep a copy of the data dir off the tmpfs that is going away.
    const copy = await tempDir('pbx-torture-disk-data-');
    await fs.cp(dir, copy, { recursive: true, filter: (src) => !path.basename(src).startsWith('filler-') }).catch(() => {});
    opts.canaryDirs.push(copy);
    try {
      execFileSync('umount', [dir], { stdio: 'pipe' });
    } catch {
      execFileSync('umount', ['-l', dir], { stdio: 'ignore' });
    }
    await fs.rm(dir, { recursive: true, force: true });
  }
  return violations.map((v) => `disk: ${v}`);
}
