// One process owns a data dir: a pid lock file, taken over when its owner is gone (kill -9 leaves it behind).
import fs from 'node:fs/promises';
import path from 'node:path';

export class LockedError extends Error {
  code = 'data_dir_locked';
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class DataDirLock {
  private file: string;
  private held = false;

  constructor(dataDir: string) {
    this.file = path.join(dataDir, 'printbox.pid');
  }

  async acquire(): Promise<void> {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const fh = await fs.open(this.file, 'wx', 0o600);
        await fh.writeFile(String(process.pid));
        await fh.close();
        this.held = true;
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const pid = Number((await fs.readFile(this.file, 'utf8').catch(() => '')).trim());
        if (pid && pid !== process.pid && alive(pid)) throw new LockedError(`the data dir ${path.dirname(this.file)} is in use by process ${pid}`);
        await fs.rm(this.file, { force: true }); // stale: its owner died
      }
    }
    throw new LockedError(`could not lock ${path.dirname(this.file)}`);
  }

  async release(): Promise<void> {
    if (this.held) await fs.rm(this.file, { force: true });
    this.held = false;
  }
}
