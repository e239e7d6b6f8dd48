// Builds a job history quickly: writes finished job records straight into a data dir's journal, as the spool would.
import fs from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { loadSpoolKey } from '../runtime/spool/keys.js';
import { sealRecord } from '../runtime/spool/seal.js';
import type { JobRecord } from '../runtime/spool/jobs.js';

/**
 * Appends `count` finished ('sent', document dropped) job records to <dataDir>/spool/journal.log, sealed with the
 * data dir's spool key (created if missing). The records look like what 2 KiB API jobs leave behind.
 * Returns the journal's size in bytes.
 */
export async function seedHistory(dataDir: string, count: number): Promise<number> {
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const key = await loadSpoolKey(dataDir);
  const spoolDir = path.join(dataDir, 'spool');
  fs.mkdirSync(spoolDir, { recursive: true, mode: 0o700 });
  const file = path.join(spoolDir, 'journal.log');
  const fd = fs.openSync(file, 'a', 0o600);
  const t0 = Date.parse('2026-01-01T00:00:00Z');
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
      const at = new Date(t0 + i * 50).toISOString();
      const rec: JobRecord = {
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
      lines.push(sealRecord(Buffer.from(JSON.stringify(rec)), key).toString('base64') + '\n');
      if (lines.length >= 4096) flush();
    }
    flush();
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  return bytes;
}
