// The appliance's TLS identity: a self-signed certificate naming every way a client may reach the box.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { X509Certificate, createHash } from 'node:crypto';
import { writeFileAtomic } from './fsutil.js';

/**
 * TLS 1.2 only with ECDHE key exchange and AEAD ciphers (no CBC, CCM8, ARIA, no static RSA); TLS 1.3's own suites are all AEAD.
 * Passed wherever a secure context is made: at start and when the certificate changes.
 */
export const TLS_POLICY = {
  minVersion: 'TLSv1.2' as const,
  ciphers: [
    'TLS_AES_128_GCM_SHA256',
    'TLS_AES_256_GCM_SHA384',
    'TLS_CHACHA20_POLY1305_SHA256',
    'ECDHE-ECDSA-AES128-GCM-SHA256',
    'ECDHE-RSA-AES128-GCM-SHA256',
    'ECDHE-ECDSA-AES256-GCM-SHA384',
    'ECDHE-RSA-AES256-GCM-SHA384',
    'ECDHE-ECDSA-CHACHA20-POLY1305',
    'ECDHE-RSA-CHACHA20-POLY1305',
  ].join(':'),
  honorCipherOrder: true,
};

export interface TlsIdentity {
  key: string;
  cert: string;
  fingerprint: string; // SHA-256 of the DER certificate, colon-separated hex
  names: string[];
}

/** Host names and addresses a LAN client might use for this box. */
export function boxNames(extra: string[] = []): { dns: string[]; ips: string[] } {
  const host = os.hostname();
  const dns = new Set([host, `${host.split('.')[0]}.local`, 'localhost', ...extra.filter((n) => !isIp(n))]);
  const ips = new Set<string>(['127.0.0.1', '::1', ...extra.filter(isIp)]);
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) if (!a.address.startsWith('fe80')) ips.add(a.address);
  }
  return { dns: [...dns], ips: [...ips] };
}

function isIp(s: string): boolean {
  return /^[\d.]+$/.test(s) || s.includes(':');
}

/** IPv6 in its short lowercase form, so names from the OS and from a certificate compare equal. */
export function canonicalName(n: string): string {
  return n.includes(':') ? new URL(`http://[${n}]/`).hostname.slice(1, -1) : n;
}

export function fingerprintOf(certPem: string): string {
  return new X509Certificate(certPem).fingerprint256;
}

export function certNames(certPem: string): string[] {
  const san = new X509Certificate(certPem).subjectAltName ?? '';
  return san.split(', ').map((s) => canonicalName(s.replace(/^(DNS|IP Address):/, '')));
}

/** `clientAuth`: the certificate also proves the holder as a client (cluster routes verify both ends). */
export async function generateIdentity(names: { dns: string[]; ips: string[] }, opts: { clientAuth?: boolean } = {}): Promise<{ key: string; cert: string }> {
  const altNames = [...names.dns.map((value) => ({ type: 2 as const, value })), ...names.ips.map((ip) => ({ type: 7 as const, ip }))];
  const now = new Date();
  // Loaded only when a certificate is made (first start, regenerate): node-forge is large and otherwise idle.
  const { default: selfsigned } = await import('selfsigned');
  const pems = await selfsigned.generate([{ name: 'commonName', value: names.dns[0] }, { name: 'organizationName', value: 'printbox appliance' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate: new Date(now.getTime() - 86400000),
    notAfterDate: new Date(now.getTime() + 825 * 86400000),
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true, ...(opts.clientAuth && { clientAuth: true }) },
      { name: 'subjectAltName', altNames },
    ],
  });
  return { key: pems.private, cert: pems.cert };
}

/** Loads tls/cert.pem + tls/key.pem, creating them on first start. A cert that lost a current address is reissued. */
export async function loadOrCreateIdentity(dataDir: string): Promise<TlsIdentity> {
  const dir = path.join(dataDir, 'tls');
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const keyFile = path.join(dir, 'key.pem');
  const certFile = path.join(dir, 'cert.pem');
  const wanted = boxNames();
  let key: string, cert: string;
  try {
    [key, cert] = await Promise.all([fs.readFile(keyFile, 'utf8'), fs.readFile(certFile, 'utf8')]);
    const have = new Set(certNames(cert));
    const custom = await fs.stat(path.join(dir, 'custom')).then(() => true, () => false);
    if (!custom && ![...wanted.dns, ...wanted.ips].every((n) => have.has(canonicalName(n)))) throw Object.assign(new Error('names changed'), { code: 'ENOENT' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    ({ key, cert } = await generateIdentity(wanted));
    await writeFileAtomic(keyFile, key, 0o600);
    await writeFileAtomic(certFile, cert, 0o644);
  }
  return { key, cert, fingerprint: fingerprintOf(cert), names: certNames(cert) };
}

export function fingerprintHex(certPem: string): string {
  return createHash('sha256').update(new X509Certificate(certPem).raw).digest('hex');
}
