// Small shared pieces of the page: status badges, messages, and a button that shows its own progress and errors.
import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import { ApiFailure } from './api';

export function Badge(props: { tone: string; children: ComponentChildren }) {
  return <span class={`badge ${props.tone}`}>{props.children}</span>;
}

export function Note(props: { kind: 'error' | 'ok' | 'info' | 'warn'; children: ComponentChildren; testid?: string }) {
  if (!props.children) return null;
  return (
    <p class={`note ${props.kind}`} role={props.kind === 'error' ? 'alert' : 'status'} data-testid={props.testid}>
      {props.children}
    </p>
  );
}

export const messageOf = (err: unknown) => (err instanceof ApiFailure ? err.message : err instanceof Error ? err.message : String(err));

/** Runs an action; while it runs the caller shows "busy", afterwards an error in words if it failed. */
export function useAction() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState('');
  const run = async (fn: () => Promise<unknown>) => {
    setBusy(true);
    setError('');
    try {
      await fn();
      return true;
    } catch (err) {
      setError(messageOf(err));
      return false;
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, setError, run };
}

export function ActionButton(props: { label: string; busyLabel?: string; onClick: () => Promise<unknown>; kind?: 'primary' | 'danger' | 'plain'; confirm?: string; testid?: string; onError?: (m: string) => void }) {
  const a = useAction();
  return (
    <span class="action">
      <button
        type="button"
        class={props.kind ?? 'plain'}
        disabled={a.busy}
        data-testid={props.testid}
        onClick={async () => {
          if (props.confirm && !window.confirm(props.confirm)) return;
          await a.run(props.onClick);
        }}
      >
        {a.busy ? (props.busyLabel ?? `${props.label}…`) : props.label}
      </button>
      {a.error && (
        <span class="inline-error" role="alert">
          {a.error}
        </span>
      )}
    </span>
  );
}

export function Section(props: { title: string; children: ComponentChildren; actions?: ComponentChildren; id?: string }) {
  return (
    <section class="card" aria-labelledby={props.id}>
      <div class="card-head">
        <h2 id={props.id}>{props.title}</h2>
        {props.actions}
      </div>
      {props.children}
    </section>
  );
}
