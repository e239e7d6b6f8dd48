// The page's only way out: same-origin JSON calls to the box's API, with the session's CSRF header and errors in words.
import { friendly } from './words';

export class ApiFailure extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

let csrf = '';
let signedOut: (notice: string) => void = () => {};

export function setCsrf(token: string): void {
  csrf = token;
}

/** Called when the box says this browser is no longer signed in (expired, restarted, password changed). */
export function onSignedOut(fn: (notice: string) => void): void {
  signedOut = fn;
}

export function notifySignedOut(notice: string): void {
  csrf = '';
  signedOut(notice);
}

export async function api<T = any>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (csrf) headers['x-printbox-csrf'] = csrf;
  let res: Response;
  try {
    res = await fetch(path, { method, headers, credentials: 'same-origin', cache: 'no-store', body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiFailure(0, 'offline', friendly('offline', '', 0));
  }
  const text = await res.text();
  let data: any;
  try {
    data = text ? JSON.parse(text) : undefined;
  } catch {
    data = undefined;
  }
  if (res.ok) return data as T;
  const code: string = data?.error?.code ?? `http_${res.status}`;
  const failure = new ApiFailure(res.status, code, friendly(code, data?.error?.message ?? res.statusText, res.status));
  if (res.status === 401 && !path.startsWith('/v1/session') && !path.startsWith('/v1/setup')) {
    notifySignedOut(code === 'session_expired' ? 'Your sign-in has expired. Please sign in again.' : 'You are signed out. Please sign in again.');
  }
  throw failure;
}
