// Plain words for states, sizes, times and errors: what the page says instead of codes.
import type { JobState, Printer } from './types';

export function sentence(s: string): string {
  const t = s.trim();
  if (!t) return t;
  return t[0].toUpperCase() + t.slice(1) + (/[.!?]$/.test(t) ? '' : '.');
}

const BY_CODE: Record<string, string> = {
  offline: 'The appliance did not answer. Check that it is switched on and that this device is on the same network.',
  wrong_password: 'That password is not right. Check it and try again.',
  too_many_attempts: '',
  csrf_failed: 'This page is out of date. Reload it and try again.',
  route_not_found: 'This appliance does not offer that yet (its software may be older than this page).',
  internal: 'Something went wrong inside the appliance. The details are in its log.',
};

export function friendly(code: string, message: string, status: number): string {
  if (BY_CODE[code]) return BY_CODE[code];
  if (message) return sentence(message);
  if (status >= 500) return BY_CODE.internal;
  return `The appliance refused this (${status}).`;
}

export const JOB_STATE_WORDS: Record<JobState, string> = {
  received: 'Receiving',
  'waiting-for-batch': 'Waiting for its batch',
  queued: 'Waiting to print',
  sending: 'Sending to the printer',
  sent: 'Sent to the printer',
  confirmed: 'Printed',
  held: 'Held',
  failed: 'Failed',
  cancelled: 'Cancelled',
};

export const JOB_TONE: Record<JobState, 'ok' | 'busy' | 'warn' | 'bad' | 'muted'> = {
  received: 'busy',
  'waiting-for-batch': 'muted',
  queued: 'muted',
  sending: 'busy',
  sent: 'ok',
  confirmed: 'ok',
  held: 'warn',
  failed: 'bad',
  cancelled: 'muted',
};

export function printerWords(p: Printer): { label: string; tone: 'ok' | 'busy' | 'warn' | 'bad' | 'muted' } {
  if (!p.enabled) return { label: 'Switched off', tone: 'muted' };
  switch (p.queue.state) {
    case 'printing':
      return { label: 'Printing', tone: 'busy' };
    case 'waiting':
      return { label: 'Offline — trying again', tone: 'warn' };
    case 'stopped':
      return { label: 'Stopped', tone: 'bad' };
    case 'disabled':
      return { label: 'Switched off', tone: 'muted' };
    default:
      return p.queue.lastError ? { label: 'Ready (last try failed)', tone: 'warn' } : { label: 'Ready', tone: 'ok' };
  }
}

export const ERROR_POLICY_WORDS: Record<Printer['errorPolicy'], { title: string; help: string }> = {
  'retry-job': { title: 'Keep trying', help: 'Retry the job with growing pauses; after the limit hold it and go on with the next one later.' },
  'hold-job': { title: 'Hold the job, go on', help: 'After the retry limit put the job aside (held) and print the next job.' },
  'stop-printer': { title: 'Stop the printer', help: 'After the retry limit stop this printer until you resume it, so nothing prints out of order.' },
};

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

export function ago(iso: string | undefined): string {
  if (!iso) return '';
  const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
  if (s < 0) return `in ${duration(-s)}`;
  if (s < 5) return 'just now';
  return `${duration(s)} ago`;
}

export function duration(s: number): string {
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  if (s < 86400) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} days`;
}

export function when(iso: string | undefined): string {
  return iso ? new Date(iso).toLocaleString() : '';
}
