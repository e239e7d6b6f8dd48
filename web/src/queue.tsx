// The queue: jobs per printer with live state, cancel / retry / move, and batches with their order and progress.
import { useEffect, useMemo, useState } from 'preact/hooks';
import { api } from './api';
import type { Live } from './live';
import type { Batch, Job, Printer } from './types';
import { ActionButton, Badge, Note, Section } from './ui';
import { JOB_STATE_WORDS, JOB_TONE, ago, bytes, printerWords, sentence } from './words';

const FINAL = new Set(['sent', 'confirmed', 'failed', 'cancelled']);
const PAGE = 25;

export function QueueScreen(props: { live: Live }) {
  const { live } = props;
  const [only, setOnly] = useState('');
  const byPrinter = useMemo(() => {
    const m = new Map<string, Job[]>();
    for (const j of live.jobs.values()) m.set(j.printer, [...(m.get(j.printer) ?? []), j]);
    for (const list of m.values()) list.sort((a, b) => b.createdAt.localeCompare(a.createdAt));
    return m;
  }, [live.jobs]);
  const shown = live.printers.filter((p) => !only || p.id === only);
  const orphans = [...byPrinter.keys()].filter((id) => !live.printers.some((p) => p.id === id));
  return (
    <>
      <Section
        title="Queue"
        id="queue-title"
        actions={
          <label class="inline">
            Printer{' '}
            <select value={only} onChange={(e) => setOnly(e.currentTarget.value)}>
              <option value="">All printers</option>
              {live.printers.map((p) => (
                <option value={p.id}>{p.name}</option>
              ))}
            </select>
          </label>
        }
      >
        {live.printers.length === 0 && <p class="empty">No printers yet, so no jobs.</p>}
        {shown.map((p) => (
          <PrinterJobs key={p.id} printer={p} jobs={byPrinter.get(p.id) ?? []} printers={live.printers} />
        ))}
        {!only && orphans.map((id) => <PrinterJobs key={id} printer={null} jobs={byPrinter.get(id)!} printers={live.printers} />)}
      </Section>
      <Batches tick={live.tick} />
    </>
  );
}

function PrinterJobs(props: { printer: Printer | null; jobs: Job[]; printers: Printer[] }) {
  const [limit, setLimit] = useState(PAGE);
  const p = props.printer;
  const words = p ? printerWords(p) : null;
  return (
    <div class="printer-jobs" data-testid={p ? `queue-${p.name}` : 'queue-removed'}>
      <div class="row">
        <h3>{p ? p.name : 'Removed printers'}</h3>
        {words && <Badge tone={words.tone}>{words.label}</Badge>}
      </div>
      {props.jobs.length === 0 ? (
        <p class="empty">No jobs.</p>
      ) : (
        <ul class="jobs">
          {props.jobs.slice(0, limit).map((j) => (
            <JobRow key={j.jobID} job={j} printers={props.printers} />
          ))}
        </ul>
      )}
      {props.jobs.length > limit && (
        <button type="button" onClick={() => setLimit(limit + PAGE)}>
          Show {Math.min(PAGE, props.jobs.length - limit)} more
        </button>
      )}
    </div>
  );
}

function JobRow(props: { job: Job; printers: Printer[] }) {
  const j = props.job;
  const others = props.printers.filter((p) => p.id !== j.printer);
  const [target, setTarget] = useState('');
  const movable = j.state === 'held' || j.state === 'queued';
  return (
    <li class="job" data-testid="job" data-job-id={j.jobID} data-state={j.state}>
      <div class="row">
        <span class="title">{j.title || 'Untitled'}</span>
        <Badge tone={JOB_TONE[j.state]}>{JOB_STATE_WORDS[j.state]}</Badge>
      </div>
      <p class="meta">
        {j.user ? `${j.user} · ` : ''}
        {bytes(j.size)} · {j.contentType} · {ago(j.createdAt)}
        {j.attempts > 1 ? ` · ${j.attempts} tries` : ''}
        {j.batchID ? ` · batch ${j.batchID}` : ''}
      </p>
      {j.reason && <p class={`reason ${j.state === 'failed' || j.state === 'held' ? 'bad' : ''}`}>{sentence(j.reason)}</p>}
      {j.warnings?.length > 0 && <p class="hint">Not carried: {j.warnings.join('; ')}</p>}
      {!FINAL.has(j.state) && (
        <div class="buttons">
          {j.state === 'held' && <ActionButton label="Retry" kind="primary" onClick={() => api('POST', `/v1/jobs/${j.jobID}/release`)} />}
          {movable && others.length > 0 && (
            <span class="move">
              <select aria-label="Move to printer" value={target} onChange={(e) => setTarget(e.currentTarget.value)}>
                <option value="">Move to…</option>
                {others.map((p) => (
                  <option value={p.id}>{p.name}</option>
                ))}
              </select>
              {target && <ActionButton label="Move" onClick={() => api('POST', `/v1/jobs/${j.jobID}/move`, { printer: target })} />}
            </span>
          )}
          <ActionButton label="Cancel" kind="danger" confirm={`Cancel “${j.title || j.jobID}”? Its document is deleted.`} onClick={() => api('DELETE', `/v1/jobs/${j.jobID}`)} />
        </div>
      )}
    </li>
  );
}

function Batches(props: { tick: number }) {
  const [batches, setBatches] = useState<Batch[] | null>(null);
  const [error, setError] = useState('');
  const [missing, setMissing] = useState(false);
  useEffect(() => {
    // Job changes arrive in bursts: one refresh per burst is enough.
    const t = setTimeout(() => {
      api<{ batches: Batch[] }>('GET', '/v1/batches').then(
        (r) => (setBatches(r.batches.sort((a, b) => b.createdAt.localeCompare(a.createdAt))), setError('')),
        (e) => (e.status === 404 ? setMissing(true) : setError(e.message)),
      );
    }, 300);
    return () => clearTimeout(t);
  }, [props.tick]);
  if (missing) return null;
  return (
    <Section title="Batches" id="batches-title">
      <Note kind="error">{error}</Note>
      {batches?.length === 0 && <p class="empty">No batches. Applications that send ordered sets of jobs (Batch Open / Close) show them here.</p>}
      <ul class="cards">
        {batches?.map((b) => {
          const done = b.jobs.filter((j) => ['sent', 'confirmed', 'skipped'].includes(j.state)).length;
          return (
            <li key={b.batchID}>
              <article class="batch" aria-label={`Batch ${b.name || b.batchID}`}>
                <div class="row">
                  <h3>{b.name || b.batchID}</h3>
                  <Badge tone={b.state === 'done' ? 'ok' : b.state === 'failed' || b.state === 'expired' ? 'bad' : b.state === 'printing' ? 'busy' : 'muted'}>{b.state}</Badge>
                </div>
                <label class="progress">
                  {done} of {b.jobs.length} printed
                  <progress max={b.jobs.length} value={done} />
                </label>
                <details>
                  <summary>Order of its jobs</summary>
                  <ol>
                    {b.jobs.map((j) => (
                      <li>
                        <code>{j.jobID.slice(0, 8)}</code> {JOB_STATE_WORDS[j.state as Job['state']] ?? j.state}
                        {j.reason ? ` — ${j.reason}` : ''}
                      </li>
                    ))}
                  </ol>
                </details>
                {(b.state === 'done' || b.state === 'failed') && !b.documentsDeleted && (
                  <div class="buttons">
                    <ActionButton label="Print again" confirm={`Print all of batch ${b.name || b.batchID} again?`} onClick={() => api('POST', `/v1/batches/${encodeURIComponent(b.batchID)}/replay`, {})} />
                  </div>
                )}
                {b.replays.length > 0 && <p class="hint">Printed again {b.replays.length} time(s), last {ago(b.replays[b.replays.length - 1].at)}.</p>}
              </article>
            </li>
          );
        })}
      </ul>
    </Section>
  );
}
