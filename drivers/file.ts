// Example plug-in driver (file:///some/dir): writes each job's document into a folder as <jobId>.<ext>, for demos and tests.
// Loaded through drivers/plugins.ts like any third-party plug-in; it is not a built-in.
import { randomBytes } from 'node:crypto';
import { constants, createWriteStream } from 'node:fs';
import { access, open, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { CONTRACT_VERSION, type ContentType, type Driver, type DriverFactory, type OutboundJob, type Outcome, type PrinterStatus } from './contract.js';

const EXTENSION: Record<ContentType, string> = {
  pdf: 'pdf', postscript: 'ps', pcl: 'pcl', 'pwg-raster': 'pwg', urf: 'urf', jpeg: 'jpg', png: 'png', zpl: 'zpl', escpos: 'escpos', text: 'txt', raw: 'prn',
};

/** The folder a file:// URI names; only local paths (no host other than localhost). */
function folderOf(uri: URL): string {
  if (uri.hostname && uri.hostname !== 'localhost') throw new Error(`file printer URI ${uri.href} names host "${uri.hostname}"; only local folders are supported`);
  return fileURLToPath(new URL(`file://${uri.pathname}`));
}

/** Job ids come from the queue, but a file name must never climb out of the folder. */
function fileName(job: OutboundJob): string {
  const id = job.id.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+/, '_');
  return `${id}.${EXTENSION[job.contentType] ?? 'prn'}`;
}

function optionWarnings(job: OutboundJob): string[] {
  const o = job.options;
  const dropped = [
    o.copies > 1 && `copies=${o.copies}`,
    o.duplex && o.duplex !== 'none' && `duplex=${o.duplex}`,
    o.color !== undefined && `color=${o.color}`,
    o.media && `media=${o.media}`,
    o.orientation && `orientation=${o.orientation}`,
    o.pageRanges && `pageRanges=${o.pageRanges}`,
    o.finishings?.length && `finishings=${o.finishings.join(',')}`,
    o.tray && `tray=${o.tray}`,
  ].filter(Boolean);
  return dropped.length ? [`the file printer stores the document as sent; not applied: ${dropped.join(', ')}`] : [];
}

async function fsyncPath(p: string): Promise<void> {
  const fh = await open(p, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export const createFileDriver: DriverFactory = () => {
  const driver: Driver = {
    scheme: 'file',
    schema: { scheme: 'file', title: 'Folder (writes each job as a file)', uriTemplate: 'file:///var/lib/printbox/out', params: [] },

    async send(job: OutboundJob, signal: AbortSignal): Promise<Outcome> {
      let dir: string;
      try {
        dir = folderOf(job.uri);
      } catch (err) {
        return { kind: 'fail', reason: (err as Error).message };
      }
      for (const w of optionWarnings(job)) job.warn(w);
      const final = path.join(dir, fileName(job));
      // Temp name in the same folder so the rename is atomic; a crash leaves a dot-file, never a half <jobId> file.
      const temp = path.join(dir, `.${fileName(job)}.${randomBytes(4).toString('hex')}.part`);
      try {
        const out = createWriteStream(temp, { flags: 'wx', mode: 0o640 });
        await pipeline(job.open(), out, { signal });
        await fsyncPath(temp);
        await rename(temp, final);
        await fsyncPath(dir);
        return { kind: 'sent', detail: `written to ${final}` };
      } catch (err) {
        await unlink(temp).catch(() => {});
        const e = err as NodeJS.ErrnoException;
        if (e.code === 'seal_broken') return { kind: 'fail', reason: e.message };
        if (e.code === 'ABORT_ERR') return { kind: 'retry', reason: 'cancelled while writing' };
        // A missing, full or read-only folder is the printer's problem, not the job's: keep the job and retry.
        return { kind: 'retry', reason: `cannot write to ${dir}: ${e.message}` };
      }
    },

    async probe(uri: URL): Promise<PrinterStatus> {
      try {
        const dir = folderOf(uri);
        if (!(await stat(dir)).isDirectory()) return { reachable: false, detail: `${dir} is not a folder` };
        await access(dir, constants.W_OK);
        return { reachable: true, state: 'idle', formats: Object.keys(EXTENSION) };
      } catch (err) {
        return { reachable: false, detail: (err as Error).message };
      }
    },
  };
  return driver;
};

/** The plug-in declaration read by loadPlugin(). */
export const printboxDriver = { scheme: 'file', contractVersion: CONTRACT_VERSION, create: createFileDriver };
export default printboxDriver;
