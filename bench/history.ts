// Builds a job history quickly: writes finished job records straight into a data dir's history store (or, legacy, its journal), as the spool would.
import fs from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { loadSpoolKey } from '../runtime/spool/keys.js';
import { sealRecord } from '../runtime/spool/seal.js';
import { HistoryStore } from '../runtime/spool/history.js';
import type { JobRecord } from '../runtime/spool/jobs.js';

/**
 * Writes `count` finished ('sent', document dropped) job records into <dataDir>/spool/history (or, `legacy`, appends
 * them to <dataDir>/spool/journal.log as spools before the history store kept them), sealed with the data dir's
 * spool key (created if missing). The records look like what 2 KiB API jobs leave behind. Returns the bytes written.
 */
export async function seedHistory(dataDir: string, count: number, opts: { legacy?: boolean } = {}): Promise<number> {
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const key = await loadSpoolKey(dataDir);
  const spoolDir = path.join(dataDir, 'spool');
  fs.mkdirSync(spoolDir, { recursive: true, mode: 0o700 });
  if (!opts.legacy) {
    const history = new HistoryStore({ dir: path.join(spoolDir, 'history'), key, limit: count, maxAgeMs: 0 });
    await history.load();
    for (let i = 1; i <= count; i++) history.put(historyRecord(i));
    await history.close();
    return history.bytes;
  }
  const file = path.join(spoolDir, 'journal.log');
  const fd = fs.openSync(file, 'a', 0o600);
  let lines: string[] = [];
  let bytes = 0;
  const flush = () => {
    const s = lines.join('');
    fs.writeSync(fd, s);
    bytes += Buffer.byteLength(s);
    lines = [];
  };
  try {
    for (let i = 1; i <= count; i++) {
      lines.push(sealRecord(Buffer.from(JSON.stringify(historyRecord(i))), key).toString('base64') + '\n');
      if (lines.length >= 4096) flush();
    }
    flush();
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  return bytes;
}

/** The i-th seeded job: finished recently (retention by age keeps it), 50 ms after the one before. */
function historyRecord(i: number): JobRecord {
  const t0 = Date.now() - 86400000;
  const at = new Date(t0 + i * 50).toISOString();
  return {
    id: randomUUID(),
    seq: i,
    printerId: 'history-printer',
    title: 'untitled',
    user: 'anonymous',
    contentType: 'raw',
    options: { copies: 1 },
    owner: 'history-token',
    size: 2048,
    digest: '0'.repeat(64),
    metaDigest: '0'.repeat(64),
    state: 'sent',
    warnings: [],
    attempts: 1,
    createdAt: at,
    updatedAt: at,
    finishedAt: at,
    hasDocument: false,
  };
}
