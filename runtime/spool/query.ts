// Job listings over records held in memory: the filter every backend applies, and one page of it.
import { isFinal, type JobRecord } from './jobs.js';
import type { JobPage, JobQuery } from './contract.js';

export function matchesQuery(j: JobRecord, q: JobQuery): boolean {
  return (q.printerId === undefined || j.printerId === q.printerId) && (q.owner === undefined || j.owner === q.owner) && (q.state === undefined || j.state === q.state) &&
    (q.after === undefined || j.seq > q.after) && (q.before === undefined || j.seq < q.before);
}

/** One page of the matching jobs, in acceptance order or newest first; nextCursor is the last seq when more match. */
export function pageInMemory(jobs: Iterable<JobRecord>, q: JobQuery): JobPage {
  const dir = q.newestFirst ? -1 : 1;
  const all = [...jobs].filter((j) => matchesQuery(j, q)).sort((a, b) => dir * (a.seq - b.seq));
  const more = all.length > q.limit;
  const out = all.slice(0, q.limit);
  return { jobs: out, nextCursor: more ? out[out.length - 1].seq : null };
}

export function countByState(jobs: Iterable<JobRecord>, into: Partial<Record<string, number>> = {}): Partial<Record<string, number>> {
  for (const j of jobs) into[j.state] = (into[j.state] ?? 0) + 1;
  return into;
}

/** A finished job whose statusURL callback never ended, finished at or after sinceMs. */
export function callbackDue(j: JobRecord, sinceMs: number): boolean {
  return !!j.statusURL && !j.callback && isFinal(j.state) && !!j.finishedAt && Date.parse(j.finishedAt) >= sinceMs;
}
