// A document's plaintext in RAM for tools that must seek (Ghostscript's PDF reader, qpdf): an unlinked 0600 file on tmpfs.
//
// Why not a pipe: gs copies a PDF read from stdin into a temp file in $TMPDIR (on disk, in plain text), and qpdf
// cannot read one at all. Why not memfd_create: Node has no binding for it, and a native addon would be the only
// one on this path. So: create the file 0600 with O_EXCL in a tmpfs, unlink it at once (it lives only as long as
// open descriptors do, and no other process can open it by name), write the plaintext, and hand the descriptor to
// the tool as fd 3; it opens /dev/fd/3, which on Linux reopens the same RAM-backed inode with its own offset.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { PassThrough, pipeline, Readable } from 'node:stream';

const TMPFS_MAGIC = 0x01021994;

export class RamFile {
  private constructor(private handle: fs.FileHandle, public size: number) {}

  /** Descriptor to pass to a child process (stdio slot 3, read as /dev/fd/3). */
  get fd(): number {
    return this.handle.fd;
  }

  static async from(dir: string, source: AsyncIterable<Buffer> | readonly Buffer[], maxBytes: number): Promise<RamFile> {
    // A stream is taken over before the first await: Node drains and drops the stdout of a child process that
    // exits while nothing reads it (child_process flushStdio), and a quick tool (qpdf) exits before the file is open.
    if (source instanceof Readable) source = pipeline(source, new PassThrough(), () => {});
    const ram = await RamFile.open(dir).catch((err) => {
      if (source instanceof Readable) source.destroy(); // and so the source, not left paused forever
      throw err;
    });
    const handle = ram.handle;
    try {
      for await (const chunk of source as AsyncIterable<Buffer>) {
        if (ram.size + chunk.length > maxBytes) throw Object.assign(new Error(`the document is larger than the conversion memory budget (${Math.round(maxBytes / 1048576)} MiB)`), { code: 'convert_too_large' });
        let off = 0;
        while (off < chunk.length) off += (await handle.write(chunk, off, chunk.length - off, ram.size + off)).bytesWritten;
        ram.size += chunk.length;
      }
    } catch (err) {
      await ram.close();
      throw err;
    }
    return ram;
  }

  /** An empty RAM file: created 0600 and exclusive on tmpfs, unlinked at once. */
  private static async open(dir: string): Promise<RamFile> {
    const st = await fs.statfs(dir);
    if (st.type !== TMPFS_MAGIC) throw Object.assign(new Error(`${dir} is not a RAM-backed file system (tmpfs); documents are converted only in RAM`), { code: 'convert_no_ram' });
    const file = path.join(dir, `printbox-${process.pid}-${randomBytes(12).toString('hex')}`);
    const handle = await fs.open(file, 'wx+', 0o600);
    await fs.unlink(file).catch(async (err) => {
      await handle.close();
      throw err;
    });
    return new RamFile(handle, 0);
  }

  /** The first bytes, to check what the document really is. */
  async head(n: number): Promise<Buffer> {
    const b = Buffer.alloc(Math.min(n, this.size));
    await this.handle.read(b, 0, b.length, 0);
    return b;
  }

  /** The last bytes (PostScript's %%Pages: (atend) comment). */
  async tail(n: number): Promise<Buffer> {
    const len = Math.min(n, this.size);
    const b = Buffer.alloc(len);
    await this.handle.read(b, 0, len, this.size - len);
    return b;
  }

  async close(): Promise<void> {
    await this.handle.close().catch(() => {});
  }

  /** Reads it back (for a target printbox writes itself, e.g. PostScript made from text). */
  stream(): Readable {
    return this.handle.createReadStream({ start: 0, autoClose: false });
  }
}
