// The box's HTTPS certificate: names and fingerprint, download, a new self-signed one, or your own (checked first).
import { useEffect, useState } from 'preact/hooks';
import { api } from './api';
import type { Certificate } from './types';
import { Note, Section, useAction } from './ui';
import { when } from './words';

const APPLIED = 'Done: the box uses it now. Your browser will ask you to trust the new certificate — reload the page and compare the fingerprint.';

export function CertificateScreen() {
  const [cert, setCert] = useState<Certificate | null>(null);
  const [loadError, setLoadError] = useState('');
  const [done, setDone] = useState('');
  const [warnings, setWarnings] = useState<string[]>([]);
  useEffect(() => void api<Certificate>('GET', '/v1/certificate').then(setCert, (e) => setLoadError(e.message)), []);
  const changed = (c: Certificate) => {
    setCert(c);
    setDone(APPLIED);
    setWarnings(c.warnings ?? []);
  };
  return (
    <>
      <Section title="Certificate" id="cert-title">
        <Note kind="error">{loadError}</Note>
        {cert && (
          <dl class="facts">
            <dt>SHA-256 fingerprint</dt>
            <dd>
              <code class="fingerprint" data-testid="cert-fingerprint">
                {cert.fingerprint}
              </code>
            </dd>
            <dt>Names it is valid for</dt>
            <dd data-testid="cert-names">{cert.names.join(', ')}</dd>
            <dt>Valid</dt>
            <dd>
              {when(cert.validFrom)} – {when(cert.validTo)}
            </dd>
            <dt>Kind</dt>
            <dd>{cert.custom ? 'Your own certificate (uploaded)' : cert.selfSigned ? 'Self-signed by the box' : 'Issued by ' + cert.issuer}</dd>
          </dl>
        )}
        <Note kind="ok" testid="cert-done">
          {done}
        </Note>
        {warnings.map((w) => (
          <Note kind="warn">{w}</Note>
        ))}
        <p>
          <a class="button" href="/v1/certificate.pem" download="printbox.pem">
            Download certificate
          </a>{' '}
          <span class="hint">Install it on client machines to trust this box without warnings.</span>
        </p>
      </Section>
      <Regenerate onDone={changed} />
      <Upload onDone={changed} />
    </>
  );
}

function Regenerate(props: { onDone: (c: Certificate) => void }) {
  const [extra, setExtra] = useState('');
  const a = useAction();
  const submit = (e: Event) => {
    e.preventDefault();
    const extraNames = extra.split(/[\s,]+/).filter(Boolean);
    void a.run(async () => props.onDone(await api<Certificate>('POST', '/v1/certificate/regenerate', { extraNames })));
  };
  return (
    <Section title="New self-signed certificate" id="regen-title">
      <form onSubmit={submit}>
        <label>
          Extra names or addresses (optional)
          <input value={extra} onInput={(e) => setExtra(e.currentTarget.value)} placeholder="printbox.example.lan, 10.0.0.5" name="extra-names" autoCapitalize="off" spellcheck={false} />
          <span class="hint">The box's own names and addresses are always included. Separate with commas or spaces.</span>
        </label>
        <Note kind="error">{a.error}</Note>
        <button type="submit" disabled={a.busy}>
          {a.busy ? 'Issuing…' : 'Issue a new certificate'}
        </button>
      </form>
    </Section>
  );
}

function Upload(props: { onDone: (c: Certificate) => void }) {
  const [cert, setCert] = useState('');
  const [key, setKey] = useState('');
  const a = useAction();
  const readFile = (set: (s: string) => void) => async (e: Event) => {
    const f = (e.currentTarget as HTMLInputElement).files?.[0];
    if (f) set(await f.text());
  };
  const submit = (e: Event) => {
    e.preventDefault();
    void a.run(async () => props.onDone(await api<Certificate>('POST', '/v1/certificate', { cert, key })));
  };
  return (
    <Section title="Use your own certificate" id="upload-title">
      <form onSubmit={submit} data-testid="cert-upload">
        <p class="hint">The box checks it first: the key must belong to the certificate, the chain must be in order (server certificate first), and it must be valid today. It takes effect at once.</p>
        <label>
          Certificate (PEM; server certificate first, then intermediates)
          <textarea rows={6} value={cert} onInput={(e) => setCert(e.currentTarget.value)} name="cert" spellcheck={false} placeholder="-----BEGIN CERTIFICATE-----" />
          <input type="file" accept=".pem,.crt,.cer,text/plain" onChange={readFile(setCert)} aria-label="Load certificate from a file" />
        </label>
        <label>
          Private key (PEM, without passphrase)
          <textarea rows={6} value={key} onInput={(e) => setKey(e.currentTarget.value)} name="key" spellcheck={false} placeholder="-----BEGIN PRIVATE KEY-----" />
          <input type="file" accept=".pem,.key,text/plain" onChange={readFile(setKey)} aria-label="Load key from a file" />
        </label>
        <Note kind="error" testid="cert-error">
          {a.error}
        </Note>
        <button type="submit" class="primary" disabled={a.busy || !cert || !key}>
          {a.busy ? 'Checking…' : 'Check and install'}
        </button>
      </form>
    </Section>
  );
}
