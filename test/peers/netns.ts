// Two network namespaces joined by a veth pair, for mDNS tests; runs fixture scripts inside them and reads their JSON lines.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes, randomInt, X509Certificate } from 'node:crypto';
import { generate } from 'selfsigned';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface Netns {
  name: string;
  /** The veth end inside this namespace. */
  dev: string;
  address: string;
}

export interface NetnsPair {
  a: Netns;
  b: Netns;
  /** Runs a command inside `ns`; its stdout is read as JSON lines. Killed by cleanup(). */
  exec(ns: Netns, cmd: string, args: string[], env?: Record<string, string>): NsProcess;
  /** Runs `node --import tsx <script>` inside `ns` (script path relative to the checkout). */
  node(ns: Netns, script: string, args?: string[], env?: Record<string, string>): NsProcess;
  cleanup(): Promise<void>;
}

function run(args: string[]): { ok: boolean; err: string } {
  const r = spawnSync('ip', args, { encoding: 'utf8', timeout: 10_000 });
  return { ok: r.status === 0, err: (r.stderr || r.error?.message || '').trim() };
}

function must(args: string[]): void {
  const r = run(args);
  if (!r.ok) throw new Error(`ip ${args.join(' ')} failed: ${r.err}`);
}

/** Why namespaces cannot be made here, or null when they can (root and a working `ip netns`). */
export function netnsUnavailable(): string | null {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'network namespaces need root (run the tests as root, as .ci/run does)';
  const probe = `pbx-probe-${randomBytes(3).toString('hex')}`;
  const r = run(['netns', 'add', probe]);
  if (!r.ok) return `cannot create a network namespace with \`ip netns add\`: ${r.err || 'ip (iproute2) missing?'}`;
  run(['netns', 'del', probe]);
  return null;
}

export async function createNetnsPair(): Promise<NetnsPair> {
  const tag = randomBytes(3).toString('hex');
  const x = randomInt(1, 255);
  const a: Netns = { name: `pbx-a-${tag}`, dev: `pbxa${tag}`, address: `10.200.${x}.1` };
  const b: Netns = { name: `pbx-b-${tag}`, dev: `pbxb${tag}`, address: `10.200.${x}.2` };
  const procs = new Set<NsProcess>();
  const pair: NetnsPair = {
    a,
    b,
    exec(ns, cmd, args, env) {
      const p = new NsProcess(ns, cmd, args, env);
      procs.add(p);
      return p;
    },
    node(ns, script, args = [], env) {
      return pair.exec(ns, process.execPath, ['--import', 'tsx', path.join(ROOT, script), ...args], env);
    },
    async cleanup() {
      await Promise.all([...procs].map((p) => p.stop()));
      run(['netns', 'del', a.name]); // deleting a namespace deletes its veth end, and the pair with it
      run(['netns', 'del', b.name]);
    },
  };
  try {
    must(['netns', 'add', a.name]);
    must(['netns', 'add', b.name]);
    must(['link', 'add', a.dev, 'type', 'veth', 'peer', 'name', b.dev]);
    for (const ns of [a, b]) {
      must(['link', 'set', ns.dev, 'netns', ns.name]);
      must(['-n', ns.name, 'addr', 'add', `${ns.address}/24`, 'dev', ns.dev]);
      must(['-n', ns.name, 'link', 'set', 'lo', 'up']);
      must(['-n', ns.name, 'link', 'set', ns.dev, 'up']);
      // Multicast needs a route: without it sends to 224.0.0.251 fail with ENETUNREACH.
      must(['-n', ns.name, 'route', 'add', '224.0.0.0/4', 'dev', ns.dev]);
    }
  } catch (err) {
    await pair.cleanup();
    throw err;
  }
  return pair;
}

/** A process inside a namespace whose stdout lines that parse as JSON are collected as messages. */
export class NsProcess {
  readonly child: ChildProcess;
  readonly messages: any[] = [];
  private stderr = '';
  private stdoutText = '';
  readonly exited: Promise<number | null>;

  constructor(
    readonly ns: Netns,
    cmd: string,
    args: string[],
    env: Record<string, string> = {},
  ) {
    this.child = spawn('ip', ['netns', 'exec', ns.name, cmd, ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let buf = '';
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      this.stdoutText += d;
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        try {
          this.messages.push(JSON.parse(line));
        } catch {
          /* not a message: kept in stdoutText for failure reports */
        }
      }
    });
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.stderr = (this.stderr + d).slice(-20_000)));
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
  }

  /** Everything the process said so far, for assertion messages. */
  log(): string {
    return `[${this.ns.name}] stdout:\n${this.stdoutText.slice(-4000)}\nstderr:\n${this.stderr.slice(-4000)}`;
  }

  /** Waits (bounded) for a message matching `pred`, checking messages already received first. */
  async waitFor<T = any>(pred: (m: any) => boolean, ms: number, what: string): Promise<T> {
    const until = Date.now() + ms;
    let exitCode: number | null | undefined;
    void this.exited.then((c) => (exitCode = c));
    while (Date.now() < until) {
      const hit = this.messages.find(pred);
      if (hit) return hit;
      if (exitCode !== undefined) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    const hit = this.messages.find(pred);
    if (hit) return hit;
    throw new Error(`timed out after ${ms} ms waiting for ${what}${exitCode !== undefined ? ` (process exited ${exitCode})` : ''}\n${this.log()}`);
  }

  /** Waits for stdout or stderr to contain `s` (daemons and tools that print their readiness as text). */
  async waitForText(s: string, ms: number): Promise<void> {
    const until = Date.now() + ms;
    while (Date.now() < until) {
      if (this.stderr.includes(s) || this.stdoutText.includes(s)) return;
      if (this.child.exitCode !== null || this.child.signalCode !== null) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    if (this.stderr.includes(s) || this.stdoutText.includes(s)) return;
    throw new Error(`timed out after ${ms} ms waiting for "${s}"\n${this.log()}`);
  }

  /** Everything printed on stdout so far. */
  stdout(): string {
    return this.stdoutText;
  }

  signal(sig: NodeJS.Signals): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(sig);
  }

  /** SIGTERM, then SIGKILL after 2 s; resolves when the process is gone. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.signal('SIGTERM');
    const t = setTimeout(() => this.signal('SIGKILL'), 2000);
    await this.exited;
    clearTimeout(t);
  }
}

/** A self-signed certificate for `host` (the appliance's .local name) and its SHA-256 fingerprint, lower-case hex. */
export async function selfSignedCert(host: string): Promise<{ cert: string; key: string; fingerprint: string }> {
  const pems = await generate([{ name: 'commonName', value: host }], {
    keySize: 2048,
    algorithm: 'sha256',
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: host }] }],
  } as Parameters<typeof generate>[1]);
  // Computed from the DER bytes here, independently of the code under test.
  const der = new X509Certificate(pems.cert).raw;
  return { cert: pems.cert, key: pems.private, fingerprint: createHash('sha256').update(der).digest('hex') };
}
