// Tells the person at the console where the appliance answers, its certificate fingerprint and the setup code.
// Runs as root after printbox.service is ready; agetty shows /etc/issue.d/printbox.issue above the login prompt.
import fs from 'node:fs';
import os from 'node:os';
import { X509Certificate } from 'node:crypto';

const data = '/var/lib/printbox';
const read = (f) => {
  try {
    return fs.readFileSync(f, 'utf8');
  } catch {
    return undefined;
  }
};
let port = 31990;
try {
  port = JSON.parse(read('/etc/printbox/config.json') ?? '{}').port ?? port;
} catch {
  /* a broken config is printbox's to report; show the default port */
}
const cert = read(`${data}/tls/cert.pem`);
const fingerprint = cert ? new X509Certificate(cert).fingerprint256 : '(not yet generated: is printbox running? journalctl -u printbox)';
const addrs = Object.values(os.networkInterfaces())
  .flat()
  .filter((a) => a && !a.internal && !a.address.startsWith('fe80'))
  .map((a) => (a.family === 'IPv6' ? `[${a.address}]` : a.address));
const urls = [`${os.hostname().split('.')[0]}.local`, ...addrs].map((h) => `  https://${h}:${port}/`);
const code = read(`${data}/setup-code`)?.trim();
const text = [
  '',
  'printbox print appliance',
  ...urls,
  `certificate SHA-256 fingerprint:`,
  `  ${fingerprint}`,
  ...(code ? ['one-time setup code (an admin API token; revoke it with `printbox token revoke setup` once set up):', `  ${code}`] : []),
  '',
].join('\n');
// agetty expands backslash escapes in issue files.
fs.mkdirSync('/etc/issue.d', { recursive: true });
fs.writeFileSync('/etc/issue.d/printbox.issue', text.replaceAll('\\', '\\\\') + '\n', { mode: 0o600 });
process.stdout.write(text + '\n');
