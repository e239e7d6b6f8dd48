// Printer URIs without their secrets: userinfo passwords and secret-looking query values become "***" wherever a URI is shown.
export const REDACTED = '***';

/** Query parameters whose values are credentials (SNMP communities, API keys, passwords…). */
const SECRET_PARAM = /pass|pwd|secret|token|key|auth|cred|community|signature|sig$/i;

export function redactUri(uri: string): string {
  let u: URL;
  try {
    u = new URL(uri);
  } catch {
    return uri.replace(/\/\/[^/@]*@/, `//${REDACTED}@`);
  }
  let changed = false;
  if (u.password) {
    u.password = REDACTED;
    changed = true;
  } else if (u.username && u.protocol !== 'lpr:') {
    // A lone userinfo may itself be a secret (a token as user name), except LPR's queue user, which is not.
    u.username = REDACTED;
    changed = true;
  }
  for (const [k, v] of [...u.searchParams]) {
    if (v && SECRET_PARAM.test(k)) {
      u.searchParams.set(k, REDACTED);
      changed = true;
    }
  }
  return changed ? u.toString() : uri;
}

/**
 * A URI edited from a redacted view (the setup page sends back what it was shown) keeps the stored secrets
 * where it still says "***", as long as it names the same host.
 */
export function restoreSecrets(next: string, current: string): string {
  let n: URL, c: URL;
  try {
    n = new URL(next);
    c = new URL(current);
  } catch {
    return next;
  }
  if (!next.includes(REDACTED) && !next.includes(encodeURIComponent(REDACTED))) return next;
  if (n.host !== c.host || n.protocol !== c.protocol) return next;
  if (n.password === REDACTED) n.password = c.password;
  if (n.username === REDACTED) n.username = c.username;
  for (const [k, v] of [...n.searchParams]) if (v === REDACTED && c.searchParams.has(k)) n.searchParams.set(k, c.searchParams.get(k)!);
  return n.toString();
}
