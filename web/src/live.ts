// Live state over Server-Sent Events (/v1/events): a snapshot first, then every job and printer change.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, notifySignedOut } from './api';
import type { Job, Printer } from './types';

export interface Live {
  printers: Printer[];
  jobs: Map<string, Job>;
  connected: boolean;
  /** Bumped on every job change: screens that show derived data (batches) refresh on it. */
  tick: number;
  setPrinters(p: Printer[]): void;
}

export function useLive(): Live {
  const [printers, setPrinters] = useState<Printer[]>([]);
  const [jobs, setJobs] = useState<Map<string, Job>>(new Map());
  const [connected, setConnected] = useState(false);
  const [tick, setTick] = useState(0);
  const pending = useRef<Job[]>([]);
  const [generation, setGeneration] = useState(0);

  useEffect(() => {
    const es = new EventSource('/v1/events', { withCredentials: true });
    let flush: number | undefined;
    es.addEventListener('open', () => setConnected(true));
    es.addEventListener('snapshot', (e) => {
      const s = JSON.parse((e as MessageEvent).data) as { printers: Printer[]; jobs: Job[] };
      setPrinters(s.printers);
      setJobs(new Map(s.jobs.map((j) => [j.jobID, j])));
      setConnected(true);
    });
    // A burst of job events becomes one render.
    es.addEventListener('job', (e) => {
      pending.current.push(JSON.parse((e as MessageEvent).data) as Job);
      flush ??= window.setTimeout(() => {
        flush = undefined;
        const batch = pending.current.splice(0);
        setJobs((prev) => {
          const next = new Map(prev);
          for (const j of batch) next.set(j.jobID, j);
          return next;
        });
        setTick((t) => t + 1);
      }, 50);
    });
    es.addEventListener('printers', (e) => setPrinters((JSON.parse((e as MessageEvent).data) as { printers: Printer[] }).printers));
    es.addEventListener('error', async () => {
      setConnected(false);
      if (es.readyState !== EventSource.CLOSED) return; // the browser reconnects by itself
      // Closed for good: usually a 401 (expired sign-in); otherwise try again in a moment.
      try {
        const s = await api<{ signedIn: boolean; expired: boolean }>('GET', '/v1/session');
        if (!s.signedIn) return notifySignedOut(s.expired ? 'Your sign-in has expired. Please sign in again.' : 'You are signed out. Please sign in again.');
      } catch {
        /* the box is away; the banner says so */
      }
      window.setTimeout(() => setGeneration((g) => g + 1), 3000);
    });
    return () => {
      es.close();
      if (flush) clearTimeout(flush);
    };
  }, [generation]);

  return { printers, jobs, connected, tick, setPrinters };
}
