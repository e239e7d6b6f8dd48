// An OutboundJob for driver tests, built from bytes (streamed in chunks like the spool does) and collecting warnings.
import { Readable } from 'node:stream';
import type { ContentType, JobOptions, OutboundJob } from '../../drivers/contract.js';

export interface TestJob extends OutboundJob {
  warnings: string[];
  opens: number;
}

export function testJob(
  uri: string,
  data: Buffer,
  init: { id?: string; title?: string; contentType?: ContentType; options?: Partial<JobOptions>; failAfter?: number } = {},
): TestJob {
  const job: TestJob = {
    id: init.id ?? 'job-1',
    title: init.title ?? 'test document',
    user: 'tester',
    contentType: init.contentType ?? 'raw',
    size: data.length,
    options: { copies: 1, ...init.options },
    uri: new URL(uri),
    warnings: [],
    opens: 0,
    open() {
      job.opens++;
      // 64 KiB chunks like the spool; `failAfter` imitates a document whose seal breaks part-way.
      async function* chunks() {
        for (let at = 0; at < data.length; at += 65536) {
          if (init.failAfter !== undefined && at >= init.failAfter) throw Object.assign(new Error('sealed document is damaged'), { code: 'seal_broken' });
          yield data.subarray(at, at + 65536);
        }
      }
      return Readable.from(chunks(), { objectMode: false });
    },
    warn(message: string) {
      job.warnings.push(message);
    },
  };
  return job;
}
