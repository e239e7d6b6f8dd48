// The IPP job object over printbox's job records: IPP job ids (the spool's acceptance number), job states and
// reasons, job attributes, and the jobs that Create-Job opened and Send-Document has not filled yet.
import { TAG, attr, type IppAttribute } from '../../drivers/ipp-codec.js';
import type { JobRecord, JobState } from '../spool/jobs.js';
import { MIME } from '../convert/formats.js';
import type { ValidJob } from './options.js';
import { ORIENTATION_ENUM, SIDES } from './ipp-printer-attributes.js';

/** RFC 8011 job-state: 3 pending, 4 pending-held, 5 processing, 6 processing-stopped, 7 canceled, 8 aborted, 9 completed. */
export const IPP_JOB_STATE: Record<JobState, number> = {
  received: 3,
  queued: 3,
  'waiting-for-batch': 4,
  held: 4,
  sending: 5,
  sent: 9,
  confirmed: 9,
  failed: 8,
  cancelled: 7,
};

const REASONS: Record<JobState, string> = {
  received: 'job-incoming',
  queued: 'job-queued',
  'waiting-for-batch': 'job-hold-until-specified',
  held: 'job-hold-until-specified',
  sending: 'job-printing',
  sent: 'job-completed-successfully',
  confirmed: 'job-completed-successfully',
  failed: 'aborted-by-system',
  cancelled: 'job-canceled-by-user',
};

/** A job that Create-Job opened; it becomes a printbox job when Send-Document brings its document. */
export interface OpenedJob {
  ippId: number;
  printerId: string;
  valid: ValidJob;
  owner: string;
  documentFormat?: string;
  compression?: string;
  createdAt: Date;
  timer: NodeJS.Timeout;
}

/** The job attributes a client sees; `since` is the appliance's start (IPP times count seconds from it). */
export function jobAttributes(j: JobRecord, ippId: number, printerUri: string, since: number): IppAttribute[] {
  const t = (iso?: string) => (iso ? Math.max(0, Math.round((Date.parse(iso) - since) / 1000)) : undefined);
  const timeAttr = (name: string, iso?: string) => (iso ? attr(TAG.integer, `time-at-${name}`, t(iso)!) : attr(TAG.noValue, `time-at-${name}`, null));
  const dateAttr = (name: string, iso?: string) => (iso ? attr(TAG.dateTime, `date-time-at-${name}`, new Date(iso)) : attr(TAG.noValue, `date-time-at-${name}`, null));
  const processingAt = j.state === 'sending' || j.finishedAt ? (j.state === 'sending' ? j.updatedAt : j.finishedAt) : undefined;
  const o = j.options;
  const sides = Object.entries(SIDES).find(([, d]) => d === o.duplex)?.[0];
  return [
    attr(TAG.integer, 'job-id', ippId),
    attr(TAG.uri, 'job-uri', `${printerUri}/${ippId}`),
    attr(TAG.uri, 'job-printer-uri', printerUri),
    attr(TAG.uri, 'job-uuid', `urn:uuid:${j.id}`),
    attr(TAG.nameWithoutLanguage, 'job-name', j.title),
    attr(TAG.nameWithoutLanguage, 'job-originating-user-name', j.user),
    attr(TAG.enum, 'job-state', IPP_JOB_STATE[j.state]),
    attr(TAG.keyword, 'job-state-reasons', REASONS[j.state]),
    attr(TAG.textWithoutLanguage, 'job-state-message', j.reason ? `${j.state}: ${j.reason}`.slice(0, 255) : j.state),
    attr(TAG.integer, 'job-printer-up-time', Math.max(1, Math.round((Date.now() - since) / 1000))),
    timeAttr('creation', j.createdAt),
    timeAttr('processing', processingAt),
    timeAttr('completed', j.finishedAt),
    dateAttr('creation', j.createdAt),
    dateAttr('processing', processingAt),
    dateAttr('completed', j.finishedAt),
    attr(TAG.integer, 'job-k-octets', Math.ceil(j.size / 1024)),
    attr(TAG.integer, 'number-of-documents', 1),
    attr(TAG.integer, 'job-impressions-completed', 0),
    attr(TAG.mimeMediaType, 'document-format', MIME[j.contentType] ?? 'application/octet-stream'),
    attr(TAG.integer, 'copies', o.copies),
    ...(sides ? [attr(TAG.keyword, 'sides', sides)] : []),
    ...(o.media ? [attr(TAG.keyword, 'media', o.media)] : []),
    ...(o.orientation ? [attr(TAG.enum, 'orientation-requested', ORIENTATION_ENUM[o.orientation])] : []),
    ...(o.color !== undefined ? [attr(TAG.keyword, 'print-color-mode', o.color ? 'color' : 'monochrome')] : []),
  ];
}

/** An opened job waiting for its document: pending, incoming. */
export function openedJobAttributes(o: OpenedJob, printerUri: string, since: number): IppAttribute[] {
  return [
    attr(TAG.integer, 'job-id', o.ippId),
    attr(TAG.uri, 'job-uri', `${printerUri}/${o.ippId}`),
    attr(TAG.uri, 'job-printer-uri', printerUri),
    attr(TAG.nameWithoutLanguage, 'job-name', o.valid.title),
    attr(TAG.nameWithoutLanguage, 'job-originating-user-name', o.valid.user),
    attr(TAG.enum, 'job-state', 3),
    attr(TAG.keyword, 'job-state-reasons', 'job-incoming'),
    attr(TAG.textWithoutLanguage, 'job-state-message', 'waiting for its document'),
    attr(TAG.integer, 'job-printer-up-time', Math.max(1, Math.round((Date.now() - since) / 1000))),
    attr(TAG.integer, 'time-at-creation', Math.max(0, Math.round((o.createdAt.getTime() - since) / 1000))),
    attr(TAG.noValue, 'time-at-processing', null),
    attr(TAG.noValue, 'time-at-completed', null),
    attr(TAG.dateTime, 'date-time-at-creation', o.createdAt),
    attr(TAG.integer, 'number-of-documents', 0),
  ];
}

/** The few attributes a job-creating operation answers with (RFC 8011 §4.2.1.2). */
export const JOB_CREATED_ATTRIBUTES = ['job-id', 'job-uri', 'job-state', 'job-state-reasons', 'job-state-message'];

/** Job ids: a job's IPP id is its acceptance number, except a Create-Job job, which keeps the id it was given then. */
export class IppJobIds {
  private aliasOf = new Map<string, number>(); // job uuid → IPP id given by Create-Job
  private jobOf = new Map<number, string>();
  readonly opened = new Map<number, OpenedJob>();

  idOf(j: JobRecord): number {
    return this.aliasOf.get(j.id) ?? j.seq;
  }

  alias(ippId: number, jobId: string): void {
    this.aliasOf.set(jobId, ippId);
    this.jobOf.set(ippId, jobId);
    // Only jobs still looked at need an alias; old ones fall back to their acceptance number.
    if (this.jobOf.size > 10000) {
      const [oldId, oldJob] = this.jobOf.entries().next().value!;
      this.jobOf.delete(oldId);
      this.aliasOf.delete(oldJob);
    }
  }

  /** The id was given by Create-Job (its job is found through the alias, never by acceptance number). */
  isAlias(ippId: number): boolean {
    return this.jobOf.has(ippId);
  }

  /** The job with this IPP id among `records`. */
  find(ippId: number, get: (id: string) => JobRecord | undefined, records: () => Iterable<JobRecord>): JobRecord | undefined {
    const aliased = this.jobOf.get(ippId);
    if (aliased) return get(aliased);
    for (const j of records()) if (j.seq === ippId && !this.aliasOf.has(j.id)) return j;
    return undefined;
  }
}
