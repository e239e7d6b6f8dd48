// Printers: the configured ones with live state, the ones found on the network, and forms to add and edit.
import { useEffect, useMemo, useState } from 'preact/hooks';
import { api, ApiFailure } from './api';
import type { Live } from './live';
import type { Discovered, DriverSchema, Job, Printer, UriParam } from './types';
import { ActionButton, Badge, Note, Section, useAction } from './ui';
import { ERROR_POLICY_WORDS, JOB_STATE_WORDS, JOB_TONE, printerWords, sentence } from './words';

export function PrintersScreen(props: { live: Live }) {
  const { live } = props;
  const [drivers, setDrivers] = useState<DriverSchema[]>([]);
  const [adding, setAdding] = useState<{ name?: string; uri?: string } | null>(null);
  const [editing, setEditing] = useState<string | null>(null);
  const [loadError, setLoadError] = useState('');
  useEffect(() => {
    api<{ drivers: DriverSchema[] }>('GET', '/v1/drivers').then((r) => setDrivers(r.drivers), (e) => setLoadError(e.message));
  }, []);
  const held = useMemo(() => {
    const c = new Map<string, number>();
    for (const j of live.jobs.values()) if (j.state === 'held') c.set(j.printer, (c.get(j.printer) ?? 0) + 1);
    return c;
  }, [live.jobs]);

  return (
    <>
      <Section
        title="Printers"
        id="printers-title"
        actions={
          !adding && (
            <button class="primary" onClick={() => setAdding({})} data-testid="add-printer">
              Add a printer
            </button>
          )
        }
      >
        <Note kind="error">{loadError}</Note>
        {adding && <PrinterForm drivers={drivers} initial={adding} onClose={() => setAdding(null)} />}
        {live.printers.length === 0 && !adding && <p class="empty">No printers yet. Add one found on the network below, or add one by its address.</p>}
        <ul class="cards">
          {live.printers.map((p) =>
            editing === p.id ? (
              <li key={p.id}>
                <EditPrinter printer={p} onClose={() => setEditing(null)} />
              </li>
            ) : (
              <li key={p.id}>
                <PrinterCard printer={p} held={held.get(p.id) ?? 0} jobs={live.jobs} onEdit={() => setEditing(p.id)} />
              </li>
            ),
          )}
        </ul>
      </Section>
      <DiscoveredList configured={live.printers} onAdd={(d) => setAdding({ name: suggestName(d.name), uri: d.preferred?.uri })} />
    </>
  );
}

function suggestName(s: string): string {
  return s.replace(/[^A-Za-z0-9_.-]+/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 64) || 'printer';
}

function PrinterCard(props: { printer: Printer; held: number; jobs: Map<string, Job>; onEdit: () => void }) {
  const p = props.printer;
  const words = printerWords(p);
  const [testJob, setTestJob] = useState<string | null>(null);
  const test = testJob ? props.jobs.get(testJob) : undefined;
  const toggle = () => api('PATCH', `/v1/printers/${p.id}`, { enabled: !p.enabled });
  return (
    <article class="printer" data-testid={`printer-${p.name}`} aria-label={`Printer ${p.name}`}>
      <div class="row">
        <h3>{p.name}</h3>
        <Badge tone={words.tone}>
          <span data-testid="printer-state">{words.label}</span>
        </Badge>
      </div>
      <p class="uri">{p.uri}</p>
      <p class="counts">
        {p.queue.queued} waiting{props.held ? ` · ${props.held} held` : ''} · if it fails: {ERROR_POLICY_WORDS[p.errorPolicy].title.toLowerCase()}
      </p>
      {p.stopped && <Note kind="error">Stopped: {sentence(p.stopped.reason)}</Note>}
      {p.queue.lastError && !p.stopped && <Note kind="warn">Last problem: {sentence(p.queue.lastError)}</Note>}
      {test && (
        <Note kind={JOB_TONE[test.state] === 'bad' ? 'error' : 'info'} testid="test-page-state">
          Test page: {JOB_STATE_WORDS[test.state]}
          {test.reason ? ` — ${test.reason}` : ''}
        </Note>
      )}
      <div class="buttons">
        <ActionButton
          label="Print test page"
          testid="test-page"
          onClick={async () => {
            const j = await api<Job>('POST', `/v1/printers/${p.id}/test`);
            setTestJob(j.jobID);
          }}
        />
        <button type="button" onClick={props.onEdit}>
          Edit
        </button>
        <ActionButton label={p.enabled ? 'Switch off' : 'Switch on'} onClick={toggle} />
        {p.stopped && <ActionButton label="Resume" kind="primary" onClick={() => api('POST', `/v1/printers/${p.id}/resume`)} />}
        <ActionButton label="Remove" kind="danger" confirm={`Remove printer ${p.name}? Its settings are deleted; finished jobs stay in the history.`} onClick={() => api('DELETE', `/v1/printers/${p.id}`)} />
      </div>
    </article>
  );
}

// ---- add: a form rendered from the chosen driver's URI parameters

function splitTemplate(t: string): { scheme: string; address: string } {
  const m = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/i.exec(t);
  return m ? { scheme: m[1], address: m[2] } : { scheme: t.replace(/:.*$/, ''), address: '' };
}

function parseUri(uri: string | undefined): { scheme: string; address: string; params: Record<string, string> } | null {
  if (!uri) return null;
  const m = /^([a-z][a-z0-9+.-]*):\/\/([^?#]*)(\?[^#]*)?/i.exec(uri);
  if (!m) return null;
  return { scheme: m[1].toLowerCase(), address: m[2], params: Object.fromEntries(new URLSearchParams(m[3] ?? '')) };
}

/** Only parameters that differ from the driver's default go into the URI: it stays short and readable. */
function buildUri(scheme: string, address: string, params: UriParam[], values: Record<string, string>): string {
  const q = new URLSearchParams();
  for (const p of params) {
    const v = values[p.name];
    if (v === undefined || v === '' || v === String(p.default ?? '')) continue;
    q.set(p.name, v);
  }
  const qs = q.toString();
  return `${scheme}://${address.trim()}${qs ? `?${qs}` : ''}`;
}

function ParamField(props: { param: UriParam; value: string; onChange: (v: string) => void }) {
  const { param: p } = props;
  const id = `param-${p.name}`;
  const help = (
    <span class="hint" id={`${id}-help`}>
      {p.description}
      {p.default !== undefined && p.type !== 'boolean' ? ` (default ${p.default})` : ''}
    </span>
  );
  if (p.type === 'boolean') {
    const checked = props.value === '' ? Boolean(p.default) : props.value === 'true';
    return (
      <label class="check">
        <input type="checkbox" checked={checked} onChange={(e) => props.onChange(String(e.currentTarget.checked))} aria-describedby={`${id}-help`} name={p.name} />
        <span>
          {p.name}
          {help}
        </span>
      </label>
    );
  }
  if (p.type === 'enum') {
    return (
      <label>
        {p.name}
        <select value={props.value || String(p.default ?? '')} onChange={(e) => props.onChange(e.currentTarget.value)} aria-describedby={`${id}-help`} name={p.name}>
          {!p.default && <option value="">(not set)</option>}
          {p.values?.map((v) => (
            <option value={v}>{v}</option>
          ))}
        </select>
        {help}
      </label>
    );
  }
  const common = { value: props.value, placeholder: p.default !== undefined ? String(p.default) : '', onInput: (e: Event) => props.onChange((e.currentTarget as HTMLInputElement).value), 'aria-describedby': `${id}-help`, name: p.name };
  return (
    <label>
      {p.name}
      {p.type === 'integer' ? <input type="number" inputMode="numeric" step={1} {...common} /> : <input type="text" {...common} />}
      {help}
    </label>
  );
}

function PrinterForm(props: { drivers: DriverSchema[]; initial: { name?: string; uri?: string }; onClose: () => void }) {
  const pre = parseUri(props.initial.uri);
  const [scheme, setScheme] = useState(pre?.scheme ?? 'raw');
  const driver = props.drivers.find((d) => d.scheme === scheme) ?? props.drivers.find((d) => splitTemplate(d.uriTemplate).scheme === scheme);
  const [name, setName] = useState(props.initial.name ?? '');
  const [address, setAddress] = useState(pre?.address ?? '');
  const [values, setValues] = useState<Record<string, string>>(pre?.params ?? {});
  const a = useAction();
  const example = driver ? splitTemplate(driver.uriTemplate).address : 'host:port';
  const uri = buildUri(scheme, address, driver?.params ?? [], values);
  const submit = (e: Event) => {
    e.preventDefault();
    void a.run(async () => {
      await api('POST', '/v1/printers', { name: name.trim(), uri });
      props.onClose();
    });
  };
  return (
    <form class="subcard" onSubmit={submit} data-testid="printer-form" aria-label="Add a printer">
      <h3>Add a printer</h3>
      <label>
        Name
        <input value={name} onInput={(e) => setName(e.currentTarget.value)} required pattern="[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}" name="name" placeholder="office-laser" />
        <span class="hint">Letters, digits, “-”, “_” or “.”; applications use it to pick this printer.</span>
      </label>
      <label>
        How the box talks to it
        <select value={scheme} onChange={(e) => (setScheme(e.currentTarget.value), setValues({}))} name="driver">
          {props.drivers.map((d) => (
            <option value={d.scheme}>{d.title}</option>
          ))}
        </select>
      </label>
      <label>
        Address
        <input value={address} onInput={(e) => setAddress(e.currentTarget.value)} required name="address" placeholder={example} autoCapitalize="off" spellcheck={false} />
        <span class="hint">For example {example.replace(/^host/, '192.168.1.20')}</span>
      </label>
      {driver && driver.params.length > 0 && (
        <details>
          <summary>More settings for {driver.title}</summary>
          {driver.params.map((p) => (
            <ParamField param={p} value={values[p.name] ?? ''} onChange={(v) => setValues({ ...values, [p.name]: v })} />
          ))}
        </details>
      )}
      <p class="hint">
        Printer URI: <code data-testid="uri-preview">{uri}</code>
      </p>
      <Note kind="error" testid="printer-form-error">
        {a.error}
      </Note>
      <div class="buttons">
        <button class="primary" type="submit" disabled={a.busy}>
          {a.busy ? 'Adding…' : 'Add printer'}
        </button>
        <button type="button" onClick={props.onClose}>
          Cancel
        </button>
      </div>
    </form>
  );
}

// ---- edit: name, address, on/off, error policy, default options

function EditPrinter(props: { printer: Printer; onClose: () => void }) {
  const p = props.printer;
  const [f, setF] = useState({
    name: p.name,
    uri: p.uri,
    enabled: p.enabled,
    errorPolicy: p.errorPolicy,
    retryLimit: String(p.retry.limit),
    copies: String(p.defaults.copies ?? ''),
    duplex: p.defaults.duplex ?? '',
    color: p.defaults.color === undefined ? '' : String(p.defaults.color),
    media: p.defaults.media ?? '',
    contentType: p.defaults.contentType ?? '',
    accepts: (p.accepts ?? []).join(', '),
    lpd: p.intake?.lpd ?? false,
    rawPort: String(p.intake?.raw?.port ?? ''),
    allow: (p.intake?.allow ?? []).join(', '),
    announce: p.announce !== false,
  });
  const set = (k: keyof typeof f) => (e: Event) => setF({ ...f, [k]: (e.currentTarget as HTMLInputElement).type === 'checkbox' ? (e.currentTarget as HTMLInputElement).checked : (e.currentTarget as HTMLInputElement).value });
  const a = useAction();
  const submit = (e: Event) => {
    e.preventDefault();
    const defaults: Record<string, unknown> = {};
    if (f.copies) defaults.copies = Number(f.copies);
    if (f.duplex) defaults.duplex = f.duplex;
    if (f.color) defaults.color = f.color === 'true';
    if (f.media.trim()) defaults.media = f.media.trim();
    if (f.contentType) defaults.contentType = f.contentType;
    // accepts is sent only when edited: saving other fields must not turn what the printer reported into the admin's list.
    const accepts = f.accepts === (p.accepts ?? []).join(', ') ? undefined : f.accepts.split(',').map((m) => m.trim()).filter(Boolean);
    // LPD and RAW carry no credentials: either is only on with an allow list (the server says so if it is missing).
    const allow = f.allow.split(/[\s,]+/).filter(Boolean);
    const intake = f.lpd || f.rawPort.trim() ? { ...(f.lpd && { lpd: true }), ...(f.rawPort.trim() && { raw: { port: Number(f.rawPort) } }), allow } : null;
    void a.run(async () => {
      await api('PATCH', `/v1/printers/${p.id}`, { name: f.name.trim(), uri: f.uri.trim(), enabled: f.enabled, errorPolicy: f.errorPolicy, retry: { limit: Number(f.retryLimit) }, defaults, ...(accepts && { accepts }), intake, announce: f.announce });
      props.onClose();
    });
  };
  return (
    <form class="subcard" onSubmit={submit} aria-label={`Edit printer ${p.name}`} data-testid="edit-form">
      <h3>Edit {p.name}</h3>
      <label>
        Name
        <input value={f.name} onInput={set('name')} required />
      </label>
      <label>
        Printer URI
        <input value={f.uri} onInput={set('uri')} required autoCapitalize="off" spellcheck={false} />
      </label>
      <label class="check">
        <input type="checkbox" checked={f.enabled} onChange={set('enabled')} />
        <span>Switched on (jobs are sent to it)</span>
      </label>
      <label>
        Formats it takes
        <input value={f.accepts} onInput={set('accepts')} name="accepts" placeholder="application/vnd.hp-pcl, image/pwg-raster…" autoCapitalize="off" spellcheck={false} />
        <span class="hint">
          {p.acceptsFrom && p.acceptsFrom !== 'admin' ? `as the printer reports it (${p.acceptsFrom}); ` : ''}other documents are converted to one of these; empty: ask the printer
        </span>
      </label>
      <fieldset>
        <legend>When it cannot print a job</legend>
        {(Object.keys(ERROR_POLICY_WORDS) as Printer['errorPolicy'][]).map((k) => (
          <label class="check">
            <input type="radio" name={`policy-${p.id}`} value={k} checked={f.errorPolicy === k} onChange={set('errorPolicy')} />
            <span>
              {ERROR_POLICY_WORDS[k].title}
              <span class="hint">{ERROR_POLICY_WORDS[k].help}</span>
            </span>
          </label>
        ))}
        <label>
          Tries before giving up on a job
          <input type="number" min={0} step={1} value={f.retryLimit} onInput={set('retryLimit')} inputMode="numeric" />
        </label>
      </fieldset>
      <fieldset>
        <legend>Default options (used when a job does not say)</legend>
        <label>
          Copies
          <input type="number" min={1} step={1} value={f.copies} onInput={set('copies')} placeholder="1" inputMode="numeric" />
        </label>
        <label>
          Two-sided
          <select value={f.duplex} onChange={set('duplex')}>
            <option value="">(printer's choice)</option>
            <option value="none">One-sided</option>
            <option value="long-edge">Two-sided, long edge</option>
            <option value="short-edge">Two-sided, short edge</option>
          </select>
        </label>
        <label>
          Colour
          <select value={f.color} onChange={set('color')}>
            <option value="">(printer's choice)</option>
            <option value="true">Colour</option>
            <option value="false">Black and white</option>
          </select>
        </label>
        <label>
          Paper
          <input value={f.media} onInput={set('media')} placeholder="A4, Letter, iso_a4_210x297mm…" />
        </label>
        <label>
          Printer language
          <select value={f.contentType} onChange={set('contentType')}>
            <option value="">(detect from each document)</option>
            {['pdf', 'postscript', 'pcl', 'pwg-raster', 'urf', 'jpeg', 'png', 'zpl', 'escpos', 'text', 'raw'].map((c) => (
              <option value={c}>{c}</option>
            ))}
          </select>
        </label>
      </fieldset>
      <fieldset>
        <legend>Printing to this printer from other computers</legend>
        <label class="check">
          <input type="checkbox" checked={f.announce} onChange={set('announce')} />
          <span>
            Show it to phones and computers (AirPrint, Mopria, IPP Everywhere)
            <span class="hint">They print with an API token as the password.</span>
          </span>
        </label>
        <label class="check">
          <input type="checkbox" checked={f.lpd} onChange={set('lpd')} />
          <span>
            Take LPD jobs for queue "{p.name}"
            <span class="hint">For older systems that print with lpr.</span>
          </span>
        </label>
        <label>
          Take raw jobs on port
          <input type="number" min={1} max={65535} step={1} value={f.rawPort} onInput={set('rawPort')} placeholder="9101" inputMode="numeric" />
        </label>
        <label>
          Only from these addresses
          <input value={f.allow} onInput={set('allow')} placeholder="10.0.0.0/8, 192.168.1.20" autoCapitalize="off" spellcheck={false} />
          <span class="hint">LPD and raw printing have no password: list the networks or machines allowed to send.</span>
        </label>
      </fieldset>
      <Note kind="error">{a.error}</Note>
      <div class="buttons">
        <button class="primary" type="submit" disabled={a.busy}>
          {a.busy ? 'Saving…' : 'Save'}
        </button>
        <button type="button" onClick={props.onClose}>
          Cancel
        </button>
      </div>
    </form>
  );
}

// ---- found on the network (live when the appliance browses mDNS)

function DiscoveredList(props: { configured: Printer[]; onAdd: (d: Discovered) => void }) {
  const [found, setFound] = useState<Map<string, Discovered>>(new Map());
  const [status, setStatus] = useState<'loading' | 'on' | 'off' | 'unavailable'>('loading');
  const [why, setWhy] = useState('');
  useEffect(() => {
    let es: EventSource | undefined;
    api<{ printers: Discovered[] }>('GET', '/v1/discovered').then(
      (r) => {
        setFound(new Map(r.printers.map((p) => [p.id, p])));
        setStatus('on');
        es = new EventSource('/v1/discovered/events', { withCredentials: true });
        const upsert = (e: Event) => {
          const p = JSON.parse((e as MessageEvent).data) as Discovered;
          setFound((m) => new Map(m).set(p.id, p));
        };
        es.addEventListener('added', upsert);
        es.addEventListener('updated', upsert);
        es.addEventListener('gone', upsert);
        es.addEventListener('removed', (e) => {
          const p = JSON.parse((e as MessageEvent).data) as Discovered;
          setFound((m) => {
            const n = new Map(m);
            n.delete(p.id);
            return n;
          });
        });
      },
      (err: ApiFailure) => {
        setStatus(err.status === 404 ? 'unavailable' : 'off');
        setWhy(err.message);
      },
    );
    return () => es?.close();
  }, []);
  // Compared without the query: a configured ipps printer carries its pinned certificate fingerprint there.
  const bare = (u: string) => u.split('?')[0];
  const known = new Set(props.configured.map((p) => bare(p.uri)));
  const list = [...found.values()].sort((a, b) => a.name.localeCompare(b.name));
  return (
    <Section title="Found on the network" id="found-title">
      {status === 'loading' && <p class="empty">Looking…</p>}
      {status === 'off' && <p class="empty" data-testid="discovery-off">{why} Add printers by their address above.</p>}
      {status === 'unavailable' && <p class="empty" data-testid="discovery-off">This appliance cannot look for printers yet. Add printers by their address.</p>}
      {status === 'on' && list.length === 0 && <p class="empty">No printers found yet. Printers that announce themselves (AirPrint, IPP Everywhere, Bonjour) appear here by themselves.</p>}
      <ul class="cards">
        {list.map((d) => (
          <li key={d.id}>
            <article class="printer found" aria-label={`Found printer ${d.name}`}>
              <div class="row">
                <h3>{d.name}</h3>
                {d.state === 'gone' && <Badge tone="muted">Not seen lately</Badge>}
              </div>
              <p class="uri">{[d.model, d.host ?? d.addresses[0]].filter(Boolean).join(' · ')}</p>
              {d.note && <p class="hint">{d.note}</p>}
              <div class="buttons">
                {d.preferred && known.has(bare(d.preferred.uri)) ? (
                  <Badge tone="ok">Added</Badge>
                ) : (
                  <button type="button" class="primary" disabled={!d.preferred} onClick={() => props.onAdd(d)}>
                    Add
                  </button>
                )}
                {!d.preferred && <span class="hint">No way to print to it that this box knows.</span>}
              </div>
            </article>
          </li>
        ))}
      </ul>
    </Section>
  );
}

