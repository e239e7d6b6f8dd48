// The spool contract (test/spool-contract.ts) on the one-box backend: the journal and sealed files in a data dir.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { LocalSpool } from '../runtime/spool/local-spool.js';
import { reopenable, spoolContract } from './spool-contract.js';

spoolContract('local journal spool', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pbx-spool-contract-'));
  const key = randomBytes(32);
  const open = async () => {
    const s = new LocalSpool({ dataDir: dir, key, historyLimit: 1000 });
    await s.open();
    return s;
  };
  return reopenable(open, () => fs.rm(dir, { recursive: true, force: true }));
});
