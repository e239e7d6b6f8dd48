// Appliance secrets: the NaCl spool key and the callback-signing secret (0600, or from systemd credentials).
import fs from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { writeFileAtomic } from '../system/fsutil.js';

async function loadOrCreate(file: string, bytes: number, credName: string): Promise<Buffer> {
  // systemd LoadCredential= puts the key outside the data dir, readable only by the service.
  const credDir = process.env.CREDENTIALS_DIRECTORY;
  if (credDir) {
    try {
      const b = await fs.readFile(path.join(credDir, credName));
      if (b.length === bytes) return b;
    } catch {
      /* no such credential: fall back to the data dir */
    }
  }
  try {
    const b = await fs.readFile(file);
    if (b.length !== bytes) throw new Error(`${file} must be ${bytes} bytes, found ${b.length}`);
    const st = await fs.stat(file);
    if (st.mode & 0o077) await fs.chmod(file, 0o600);
    return b;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    const b = randomBytes(bytes);
    await writeFileAtomic(file, b, 0o600);
    return b;
  }
}

export const loadSpoolKey = (dataDir: string) => loadOrCreate(path.join(dataDir, 'spool.key'), 32, 'printbox-spool-key');
export const loadCallbackSecret = (dataDir: string) => loadOrCreate(path.join(dataDir, 'callback.secret'), 32, 'printbox-callback-secret');
