// Durable file operations: fsync'd writes, atomic replace, directory fsync.
import fs from 'node:fs/promises';
import fsSync from 'node:fs';
import path from 'node:path';

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Writes every byte of `bufs` at the file's current position (or at `position`). A write(2) near a full disk
 * may write only part and report no error (the ENOSPC comes with the next call): ignoring the count once let a
 * truncated document be fsync'd and acknowledged.
 */
export async function writeFully(fh: fs.FileHandle, bufs: readonly Buffer[], position?: number): Promise<void> {
  let list = bufs.filter((b) => b.length);
  while (list.length) {
    let { bytesWritten: n } = await fh.writev(list, position);
    if (n <= 0) throw Object.assign(new Error('write made no progress'), { code: 'EIO' });
    if (position !== undefined) position += n;
    let i = 0;
    while (i < list.length && n >= list[i].length) n -= list[i++].length;
    list = list.slice(i);
    if (n > 0) list[0] = list[0].subarray(n);
  }
}

/** writeFully for one small buffer, on the calling thread (a page-cache copy; the fsync that follows stays async). */
export function writeFullySync(fd: number, buf: Buffer, position?: number): void {
  let done = 0;
  while (done < buf.length) {
    const n = fsSync.writeSync(fd, buf, done, buf.length - done, position === undefined ? null : position + done);
    if (n <= 0) throw Object.assign(new Error('write made no progress'), { code: 'EIO' });
    done += n;
  }
}

/** Writes a whole small file atomically: temp file in the same dir → fsync → rename → fsync dir. Leaves no temp file on failure. */
export async function writeFileAtomic(file: string, data: string | Buffer, mode = 0o600): Promise<void> {
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  try {
    const fh = await fs.open(tmp, 'w', mode);
    try {
      await writeFully(fh, [typeof data === 'string' ? Buffer.from(data) : data]);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true }).catch(() => {});
    throw err;
  }
  await fsyncDir(path.dirname(file));
}

export async function exists(p: string): Promise<boolean> {
  try {
    await fs.access(p);
    return true;
  } catch {
    return false;
  }
}
