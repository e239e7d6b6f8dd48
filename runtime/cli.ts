// The `printbox` command: serve, and admin commands that go through the running server's admin socket
// (or, when no server runs, through the same routes in-process on the data dir).
import http from 'node:http';
import { parseArgs } from 'node:util';
import { loadConfig, type Config } from './system/config.js';
import { Appliance, adminSocketPath } from './appliance.js';
import { buildServer } from './api/server.js';

const HELP = `usage: printbox <command> [options]

  serve [--port N] [--host ADDR] [--lpd-port N]
                                          run the appliance (HTTPS API and IPP; LPD on --lpd-port, default 515)
  status                                  printers, queues and job counts
  token create [--name N] [--scope submit|admin]
                                          create an API token; prints the token alone
  token import --name N [--scope submit|admin]
                                          keep an existing API key (e.g. one Vasion clients hold):
                                          reads the secret from stdin, stores only its hash
  token list                              list tokens (never the secrets)
  token revoke ID|NAME                    revoke a token
  printer add NAME URI [--policy retry-job|hold-job|stop-printer] [--accepts MIME,…] [--resolution DPI]
                        [--lpd] [--raw-port N] [--allow RANGES]
  printer set ID|NAME [--accepts MIME,…] [--resolution DPI]
                                          formats the printer takes (others are converted); --accepts ""
                                          hands the list back to what the printer reports
  printer intake ID|NAME [--lpd] [--raw-port N] --allow RANGES | --off
                                          legacy intake: LPD queue NAME and/or a RAW port, from RANGES
                                          only (comma-separated addresses or CIDR, e.g. 10.0.0.0/8)
  printer list
  printer remove ID|NAME
  printer resume ID|NAME                  resume a stopped printer
  job list [--printer P] [--state S] [--limit N]
  job cancel ID
  job release ID                          put a held job back in line
  setup-code                              the one-time setup code of the web page (on the box only)
  selftest                                seal and open a job, serve HTTPS on loopback, exit 0 if all works
  cluster join --node NAME --address ADDR --peers ADDR,ADDR (--first [--names N,N] | --bundle FILE)
                                          make this box a cluster node: writes /etc/printbox/nats-server.conf,
                                          the config's "cluster" section and the shared secrets; --first
                                          also writes <data>/cluster-join.json to copy to the other nodes

options for every command:
  --data DIR     data dir (default $PRINTBOX_DATA, ./.printbox from a checkout, /var/lib/printbox installed)
  --json         machine-readable output
  -h, --help     this help
`;

class UsageError extends Error {}

interface Reply {
  status: number;
  body: any;
}

/** Talks to the running server over its admin socket; undefined when none is listening. */
function viaSocket(sock: string, method: string, url: string, body?: unknown): Promise<Reply | undefined> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request({ socketPath: sock, method, path: url, headers: data ? { 'content-type': 'application/json' } : {} }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : null }));
    });
    req.on('error', (err: NodeJS.ErrnoException) => (['ENOENT', 'ECONNREFUSED'].includes(err.code ?? '') ? resolve(undefined) : reject(err)));
    req.end(data);
  });
}

/** The same routes, in this process, when no server holds the data dir. */
async function inProcess(cfg: Config, method: string, url: string, body?: unknown): Promise<Reply> {
  const app = new Appliance(cfg, (await import('pino')).default({ level: 'warn' }, process.stderr));
  await app.open({ startQueues: false });
  try {
    const server = await buildServer(app, { mode: 'local' });
    const res = await server.inject({ method: method as 'GET', url, payload: body as object });
    await server.close();
    return { status: res.statusCode, body: res.body ? JSON.parse(res.body) : null };
  } finally {
    await app.close();
  }
}

async function call(cfg: Config, method: string, url: string, body?: unknown): Promise<any> {
  const sock = adminSocketPath(cfg.dataDir);
  const res = (await viaSocket(sock, method, url, body)) ?? (await inProcess(cfg, method, url, body));
  if (res.status >= 400) {
    const e = res.body?.error;
    throw new Error(e ? `${e.message} (${e.code})` : `HTTP ${res.status}`);
  }
  return res.body;
}

/** The secret on stdin (one line; a trailing newline is not part of it). Never echoed, never an argument (ps would show it). */
async function readSecret(): Promise<string> {
  if (process.stdin.isTTY) process.stderr.write('secret (then Enter and Ctrl-D): ');
  let text = '';
  for await (const chunk of process.stdin) {
    text += chunk;
    if (text.length > 4096) break;
  }
  return text.replace(/\r?\n$/, '').trim();
}

function table(rows: Record<string, unknown>[], cols: string[]): string {
  if (!rows.length) return '(none)\n';
  const cell = (v: unknown) => (v === undefined || v === null ? '-' : typeof v === 'object' ? JSON.stringify(v) : String(v));
  const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals: string[]) => vals.map((v, i) => v.padEnd(widths[i])).join('  ').trimEnd();
  return [line(cols.map((c) => c.toUpperCase())), ...rows.map((r) => line(cols.map((c) => cell(r[c]))))].join('\n') + '\n';
}

export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        data: { type: 'string' },
        port: { type: 'string' },
        host: { type: 'string' },
        'lpd-port': { type: 'string' },
        lpd: { type: 'boolean' },
        'raw-port': { type: 'string' },
        allow: { type: 'string' },
        off: { type: 'boolean' },
        name: { type: 'string' },
        scope: { type: 'string' },
        policy: { type: 'string' },
        accepts: { type: 'string' },
        resolution: { type: 'string' },
        printer: { type: 'string' },
        state: { type: 'string' },
        limit: { type: 'string' },
        json: { type: 'boolean' },
        node: { type: 'string' },
        address: { type: 'string' },
        peers: { type: 'string' },
        names: { type: 'string' },
        first: { type: 'boolean' },
        bundle: { type: 'string' },
        etc: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    process.stderr.write(`printbox: ${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  const { values: o, positionals: [cmd, sub, ...rest] } = parsed;
  if (o.help || !cmd) {
    (o.help ? process.stdout : process.stderr).write(HELP);
    return o.help ? 0 : 2;
  }
  const cfg = loadConfig({
    ...(o.data && { dataDir: o.data }),
    ...(o.port && { port: Number(o.port) }),
    ...(o.host && { host: o.host }),
    ...(o['lpd-port'] && { lpdPort: Number(o['lpd-port']) }),
  });
  /** --lpd / --raw-port / --allow as a printer's `intake` field (checked by the server). */
  const intake = () => (o.lpd || o['raw-port'] || o.allow ? { ...(o.lpd && { lpd: true }), ...(o['raw-port'] && { raw: { port: Number(o['raw-port']) } }), allow: (o.allow ?? '').split(',').map((a) => a.trim()).filter(Boolean) } : undefined);
  const out = (v: unknown, text: () => string) => process.stdout.write(o.json ? JSON.stringify(v, null, 2) + '\n' : text());
  try {
    switch (`${cmd} ${sub ?? ''}`.trim()) {
      case 'serve':
      case 'serve ': {
        if (sub) throw new UsageError(`serve takes no argument "${sub}"`);
        if (!Number.isInteger(cfg.port) || cfg.port < 0 || cfg.port > 65535) throw new UsageError('--port must be a number from 0 to 65535');
        if (!Number.isInteger(cfg.lpdPort) || cfg.lpdPort < 0 || cfg.lpdPort > 65535) throw new UsageError('--lpd-port must be a number from 0 to 65535');
        const { runServe } = await import('./run.js');
        return await runServe(cfg);
      }
      case 'status': {
        const st = await call(cfg, 'GET', '/v1/status');
        out(st, () => `${st.name} — printbox ${st.version}, up ${st.uptimeSeconds} s\njobs: ${JSON.stringify(st.jobs)}\n` + table(st.printers, ['name', 'uri', 'state', 'queued', 'lastError']));
        return 0;
      }
      case 'token create': {
        const scope = o.scope ?? 'submit';
        if (!['submit', 'admin'].includes(scope)) throw new UsageError('--scope must be submit or admin');
        const t = await call(cfg, 'POST', '/v1/tokens', { name: o.name ?? 'token', scope });
        out(t, () => `${t.token}\n`);
        return 0;
      }
      case 'token import': {
        const scope = o.scope ?? 'submit';
        if (!['submit', 'admin'].includes(scope)) throw new UsageError('--scope must be submit or admin');
        if (!o.name) throw new UsageError('token import needs --name, e.g. printbox token import --name ward-app --scope submit < key.txt');
        const secret = await readSecret();
        if (!secret) throw new UsageError('token import reads the secret from stdin, e.g. printbox token import --name ward-app < key.txt');
        const t = await call(cfg, 'POST', '/v1/tokens/import', { name: o.name, scope, token: secret });
        out(t, () => `imported ${t.name} (${t.id}), scope ${t.scope}\n`);
        return 0;
      }
      case 'token list': {
        const r = await call(cfg, 'GET', '/v1/tokens');
        out(r.tokens, () => table(r.tokens, ['id', 'name', 'scope', 'createdAt']));
        return 0;
      }
      case 'token revoke': {
        if (!rest[0]) throw new UsageError('token revoke needs a token id or name');
        const r = await call(cfg, 'DELETE', `/v1/tokens/${encodeURIComponent(rest[0])}`);
        out(r, () => `revoked ${r.name} (${r.id})\n`);
        return 0;
      }
      case 'printer add': {
        if (rest.length !== 2) throw new UsageError('printer add needs NAME and URI, e.g. printbox printer add front raw://10.0.0.5:9100');
        const r = await call(cfg, 'POST', '/v1/printers', { name: rest[0], uri: rest[1], ...(o.policy && { errorPolicy: o.policy }), ...capabilityOptions(o), ...(intake() && { intake: intake() }) });
        out(r, () => `added ${r.name} (${r.id}) → ${r.uri}\n`);
        return 0;
      }
      case 'printer set': {
        if (rest.length !== 1) throw new UsageError('printer set needs a printer id or name, e.g. printbox printer set front --accepts application/vnd.hp-pcl');
        const r = await call(cfg, 'PATCH', `/v1/printers/${encodeURIComponent(rest[0])}`, capabilityOptions(o));
        out(r, () => `${r.name} accepts ${r.accepts?.join(', ') || '(unknown: sent as it is)'}${r.resolution ? ` at ${r.resolution} dpi` : ''}\n`);
        return 0;
      }
      case 'printer intake': {
        if (!rest[0]) throw new UsageError('printer intake needs a printer id or name');
        if (!o.off && !intake()) throw new UsageError('printer intake needs --lpd and/or --raw-port N with --allow RANGES, or --off');
        const r = await call(cfg, 'PATCH', `/v1/printers/${encodeURIComponent(rest[0])}`, { intake: o.off ? null : intake() });
        const what = r.intake ? [r.intake.lpd && `LPD queue ${r.name}`, r.intake.raw && `RAW port ${r.intake.raw.port}`].filter(Boolean).join(', ') + ` from ${r.intake.allow.join(', ')}` : 'off';
        out(r, () => `${r.name}: legacy intake ${what}\n`);
        return 0;
      }
      case 'printer list': {
        const r = await call(cfg, 'GET', '/v1/printers');
        const rows = r.printers.map((p: any) => ({ ...p, state: p.stopped ? 'stopped' : p.enabled ? p.queue.state : 'disabled', queued: p.queue.queued }));
        out(r.printers, () => table(rows.map((p: any) => ({ ...p, accepts: p.accepts?.join(' ') ?? '' })), ['id', 'name', 'uri', 'state', 'queued', 'errorPolicy', 'accepts']));
        return 0;
      }
      case 'printer remove':
      case 'printer resume': {
        if (!rest[0]) throw new UsageError(`printer ${sub} needs a printer id or name`);
        const r = sub === 'remove' ? await call(cfg, 'DELETE', `/v1/printers/${encodeURIComponent(rest[0])}`) : await call(cfg, 'POST', `/v1/printers/${encodeURIComponent(rest[0])}/resume`);
        out(r, () => `${sub === 'remove' ? 'removed' : 'resumed'} ${r.name}\n`);
        return 0;
      }
      case 'job list': {
        const qs = new URLSearchParams();
        if (o.printer) qs.set('printer', o.printer);
        if (o.state) qs.set('state', o.state);
        qs.set('limit', o.limit ?? '100');
        const r = await call(cfg, 'GET', `/v1/jobs?${qs}`);
        out(r.jobs, () => table(r.jobs, ['jobID', 'state', 'printer', 'title', 'size', 'createdAt', 'reason']));
        return 0;
      }
      case 'job cancel':
      case 'job release': {
        if (!rest[0]) throw new UsageError(`job ${sub} needs a job id`);
        const r = sub === 'cancel' ? await call(cfg, 'DELETE', `/v1/jobs/${encodeURIComponent(rest[0])}`) : await call(cfg, 'POST', `/v1/jobs/${encodeURIComponent(rest[0])}/release`);
        out(r, () => `${r.jobID}: ${r.state}\n`);
        return 0;
      }
      case 'setup-code': {
        if (sub) throw new UsageError(`setup-code takes no argument "${sub}"`);
        const r = await call(cfg, 'GET', '/v1/setup-code');
        if (r.window === 'closed') process.stderr.write('printbox: the setup window is closed (other admin credentials exist); set the web password with an admin token instead\n');
        out(r, () => `${r.setupCode}\n`);
        return 0;
      }
      case 'cluster join': {
        if (!o.node || !o.address) throw new UsageError('cluster join needs --node NAME and --address ADDR');
        const { joinCluster } = await import('./cluster/join.js');
        const list = (v?: string) => (v ?? '').split(',').map((x) => x.trim()).filter(Boolean);
        const etcDir = o.etc ?? '/etc/printbox';
        const r = await joinCluster({
          node: o.node,
          address: o.address,
          peers: list(o.peers),
          names: list(o.names),
          first: !!o.first,
          bundle: o.bundle ? JSON.parse(await (await import('node:fs/promises')).readFile(o.bundle, 'utf8')) : undefined,
          etcDir,
          dataDir: cfg.dataDir,
          natsStoreDir: '/var/lib/printbox-nats',
          configFile: process.env.PRINTBOX_CONFIG ?? `${etcDir}/config.json`,
        });
        out(r, () => `wrote:\n${r.written.map((f) => `  ${f}`).join('\n')}\n${r.bundleFile ? `\ncopy ${r.bundleFile} to the other nodes (it holds the cluster key) and run there:\n  printbox cluster join --bundle cluster-join.json --node NAME --address ADDR --peers …\n` : ''}\nthen: systemctl enable --now printbox-nats && systemctl restart printbox\n`);
        return 0;
      }
      case 'selftest': {
        const { selftest } = await import('./selftest.js');
        return await selftest(cfg);
      }
      default:
        throw new UsageError(`unknown command "${[cmd, sub].filter(Boolean).join(' ')}"`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`printbox: ${err.message}\n\n${HELP}`);
      return 2;
    }
    process.stderr.write(`printbox: ${(err as Error).message}\n`);
    return 1;
  }
}

/** --accepts a,b and --resolution N as the API's printer fields (the API checks them). */
function capabilityOptions(o: { accepts?: string; resolution?: string }): Record<string, unknown> {
  return {
    ...(o.accepts !== undefined && { accepts: o.accepts.split(',').map((m) => m.trim()).filter(Boolean) }),
    ...(o.resolution !== undefined && { resolution: Number(o.resolution) }),
  };
}
