// System: health of the box (from /v1/system when the appliance has it, else /v1/status), version, disk, the cluster, and the password.
import { useEffect, useState } from 'preact/hooks';
import { api, setCsrf } from './api';
import { Note, Section, useAction } from './ui';
import { bytes, duration } from './words';
import { ClusterPanel } from './cluster';

interface Status {
  name: string;
  version: string;
  uptimeSeconds: number;
  jobs: Record<string, number>;
  printers: unknown[];
  warnings?: string[]; // settings an admin should know are on (e.g. anonymous submit)
}

interface SystemView {
  stale: boolean;
  cpu: { model: string; cores: number; loadPercent: number | null };
  loadAverage: [number, number, number];
  memory: { totalBytes: number; availableBytes: number };
  temperatureC: number | null;
  disk: { dir: string; totalBytes: number; availableBytes: number } | null;
  network: { name: string; up: boolean | null; addresses: { address: string; family: string; internal: boolean }[] }[];
  uptimeSeconds: number;
  versions: { node: string; os: string; kernel: string; printbox: string };
  problems: { probe: string; message: string }[];
  appliance: Status;
}

export function SystemScreen(props: { name: string }) {
  const [sys, setSys] = useState<SystemView | null>(null);
  const [status, setStatus] = useState<Status | null>(null);
  const [note, setNote] = useState('');
  useEffect(() => {
    const load = () =>
      api<SystemView>('GET', '/v1/system').then(
        (s) => (setSys(s), setStatus(s.appliance), setNote('')),
        // Older appliances (or health probes off): what /v1/status knows is still worth showing.
        (e) => (setNote(e.message), api<Status>('GET', '/v1/status').then(setStatus, () => {})),
      );
    void load();
    const t = setInterval(load, 10000);
    return () => clearInterval(t);
  }, []);
  const disk = sys?.disk;
  return (
    <>
      <Section title={`System — ${props.name}`} id="system-title">
        {note && <Note kind="info">Health details are not available: {note}</Note>}
        {status?.warnings?.map((w) => (
          <Note kind="warn" testid="appliance-warning">
            {w}
          </Note>
        ))}
        <dl class="facts" data-testid="system-facts">
          {status && (
            <>
              <dt>printbox version</dt>
              <dd data-testid="version">{status.version}</dd>
              <dt>Running for</dt>
              <dd>{duration(status.uptimeSeconds)}</dd>
              <dt>Jobs</dt>
              <dd>{Object.entries(status.jobs).map(([k, v]) => `${v} ${k}`).join(', ') || 'none yet'}</dd>
            </>
          )}
          {disk && (
            <>
              <dt>Disk space (spool)</dt>
              <dd>
                {bytes(disk.availableBytes)} free of {bytes(disk.totalBytes)}
                <progress max={disk.totalBytes} value={disk.totalBytes - disk.availableBytes} aria-label="Disk used" />
              </dd>
            </>
          )}
          {sys && (
            <>
              <dt>Memory</dt>
              <dd>
                {bytes(sys.memory.availableBytes)} free of {bytes(sys.memory.totalBytes)}
              </dd>
              <dt>Processor</dt>
              <dd>
                {sys.cpu.model} ({sys.cpu.cores} cores){sys.cpu.loadPercent !== null ? `, ${Math.round(sys.cpu.loadPercent)} % busy` : ''}
              </dd>
              {sys.temperatureC !== null && (
                <>
                  <dt>Temperature</dt>
                  <dd>{Math.round(sys.temperatureC)} °C</dd>
                </>
              )}
              <dt>Network</dt>
              <dd>
                {sys.network
                  .filter((n) => n.addresses.some((a) => !a.internal))
                  .map((n) => `${n.name}: ${n.addresses.filter((a) => !a.internal).map((a) => a.address).join(', ')}`)
                  .join(' · ') || 'no network address'}
              </dd>
              <dt>Software</dt>
              <dd>
                {sys.versions.os}, kernel {sys.versions.kernel}, Node {sys.versions.node}
              </dd>
              <dt>Box up for</dt>
              <dd>{duration(sys.uptimeSeconds)}</dd>
            </>
          )}
        </dl>
        {sys?.problems.map((p) => (
          <Note kind="warn">
            {p.probe}: {p.message}
          </Note>
        ))}
        <p class="hint">Recent log lines are not shown here yet; on the box, <code>journalctl -u printbox</code> has them (never with document content).</p>
      </Section>
      <ClusterPanel />
      <PasswordChange />
    </>
  );
}

function PasswordChange() {
  const [current, setCurrent] = useState('');
  const [password, setPassword] = useState('');
  const [done, setDone] = useState('');
  const a = useAction();
  const submit = (e: Event) => {
    e.preventDefault();
    setDone('');
    void a.run(async () => {
      const r = await api<{ csrf: string }>('POST', '/v1/session/password', { current, password });
      setCsrf(r.csrf);
      setCurrent('');
      setPassword('');
      setDone('Password changed. Other browsers are signed out.');
    });
  };
  return (
    <Section title="Admin password" id="password-title">
      <form onSubmit={submit}>
        <label>
          Current password
          <input type="password" value={current} onInput={(e) => setCurrent(e.currentTarget.value)} required autoComplete="current-password" />
        </label>
        <label>
          New password
          <input type="password" value={password} onInput={(e) => setPassword(e.currentTarget.value)} required minLength={8} autoComplete="new-password" />
        </label>
        <Note kind="error">{a.error}</Note>
        <Note kind="ok">{done}</Note>
        <button type="submit" disabled={a.busy}>
          {a.busy ? 'Changing…' : 'Change password'}
        </button>
      </form>
    </Section>
  );
}
