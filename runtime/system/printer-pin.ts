// Trust on first use for ipps:// printers: the certificate's SHA-256 fingerprint, read once and pinned in the printer URI.
import net from 'node:net';
import tls from 'node:tls';

export const PIN_PARAM = 'tlsFingerprint';

/** The SHA-256 fingerprint of the certificate an ipps printer presents now (colon hex, as X509Certificate.fingerprint256). */
export function presentedFingerprint(uri: URL, timeoutMs = 5000): Promise<string> {
  const host = uri.hostname.replace(/^\[|\]$/g, '');
  const port = Number(uri.port || 631);
  return new Promise((resolve, reject) => {
    // Nothing is sent on this connection: it only reads the certificate, so an unverified handshake is fine.
    const socket = tls.connect({ host, port, rejectUnauthorized: false, ...(net.isIP(host) ? {} : { servername: host }) });
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`no TLS handshake with ${host}:${port} within ${timeoutMs} ms`)));
    socket.once('secureConnect', () => {
      const f = socket.getPeerCertificate().fingerprint256;
      socket.destroy();
      if (f) resolve(f);
      else reject(new Error(`${host}:${port} presented no certificate`));
    });
    socket.once('error', reject);
  });
}

/** Whether this URI wants a pin: ipps, not verified against CAs, and none pinned yet. */
export function wantsPin(uri: string): boolean {
  try {
    const u = new URL(uri);
    return u.protocol === 'ipps:' && !u.searchParams.has(PIN_PARAM) && !['1', 'true', 'yes', 'on'].includes(u.searchParams.get('tlsVerify') ?? '');
  } catch {
    return false;
  }
}

export function withPin(uri: string, fingerprint: string): string {
  const u = new URL(uri);
  u.searchParams.set(PIN_PARAM, fingerprint);
  return u.toString();
}

/** The URI with the printer's present certificate pinned; unchanged (and a reason) when the printer cannot be reached now. */
export async function pinOnFirstUse(uri: string): Promise<{ uri: string; unpinned?: string }> {
  if (!wantsPin(uri)) return { uri };
  try {
    return { uri: withPin(uri, await presentedFingerprint(new URL(uri))) };
  } catch (err) {
    return { uri, unpinned: (err as Error).message };
  }
}
