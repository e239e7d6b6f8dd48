// `printbox cluster join`: turns an installed box into a cluster node. Writes the nats-server configuration
// (JetStream with store encryption, TLS routes to the peers), the printbox config's `cluster` section, and the
// cluster's shared secrets (cluster key, route and API certificates) from a join bundle made by the first node.
import fs from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { writeFileAtomic } from '../system/fsutil.js';
import { generateIdentity } from '../system/tls.js';

export interface NatsPlan {
  node: string;
  /** The address the peers reach this node's routes at. */
  address: string;
  /** The other nodes' addresses (or address:routePort). */
  peers: string[];
  storeDir: string;
  /** JetStream store encryption key (hex), this node's own. */
  storeKey: string;
  tlsDir: string;
  clientPort?: number;
  routePort?: number;
  monitorPort?: number;
}

/** What the first node hands to the others (a file to copy, 0600): the secrets every node must share. */
export interface JoinBundle {
  version: 1;
  clusterKey: string; // base64, 32 bytes
  route: { cert: string; key: string }; // one certificate for every node's routes, trusted as its own CA
  api: { cert: string; key: string }; // the HTTPS identity every node serves (HAProxy passes TLS through)
}

const withPort = (a: string, port: number) => (/:\d+$/.test(a) && !a.includes('::') ? a : `${a.includes(':') ? `[${a}]` : a}:${port}`);

/**
 * The nats-server configuration of one node: clients only from this box (printbox), routes over TLS with
 * certificates verified both ways, JetStream with its store encrypted, a monitoring port on loopback.
 */
export function natsServerConfig(p: NatsPlan): string {
  const route = p.routePort ?? 6222;
  const routes = p.peers.map((a) => `nats-route://${withPort(a, route)}`);
  return [
    `# nats-server for printbox cluster node ${p.node} (written by \`printbox cluster join\`)`,
    `server_name: ${JSON.stringify(p.node)}`,
    `listen: 127.0.0.1:${p.clientPort ?? 4222}`,
    `http: 127.0.0.1:${p.monitorPort ?? 8222}`,
    'jetstream {',
    `  store_dir: ${JSON.stringify(p.storeDir)}`,
    '  cipher: chachapoly',
    `  key: ${JSON.stringify(p.storeKey)}`,
    '}',
    'cluster {',
    '  name: printbox',
    `  listen: ${withPort(p.address, route)}`,
    '  tls {',
    `    cert_file: ${JSON.stringify(path.join(p.tlsDir, 'route-cert.pem'))}`,
    `    key_file: ${JSON.stringify(path.join(p.tlsDir, 'route-key.pem'))}`,
    `    ca_file: ${JSON.stringify(path.join(p.tlsDir, 'route-cert.pem'))}`,
    '    verify: true',
    '    timeout: 5',
    '  }',
    `  routes: [${routes.join(', ')}]`,
    '}',
    '',
  ].join('\n');
}

const isIp = (s: string) => /^[\d.]+$/.test(s) || s.includes(':');

/** The first node's secrets: a new cluster key, a route certificate and an API certificate naming every node. */
export async function makeBundle(names: string[]): Promise<JoinBundle> {
  const split = { dns: ['localhost', ...names.filter((n) => !isIp(n))], ips: ['127.0.0.1', ...names.filter(isIp)] };
  const route = await generateIdentity(split, { clientAuth: true });
  const api = await generateIdentity(split);
  return { version: 1, clusterKey: randomBytes(32).toString('base64'), route, api };
}

export interface JoinOptions {
  node: string;
  address: string;
  peers: string[];
  /** The names and addresses clients use (HAProxy's name, every node's address): the first node only. */
  names?: string[];
  first: boolean;
  bundle?: JoinBundle;
  etcDir: string;
  dataDir: string;
  natsStoreDir: string;
  configFile: string;
}

/** Writes everything a node needs; returns the files written (the bundle first, when this is the first node). */
export async function joinCluster(o: JoinOptions): Promise<{ written: string[]; bundleFile?: string }> {
  if (!o.first && !o.bundle) throw new Error('give --bundle FILE (made by `printbox cluster join --first` on the first node), or --first on the first node');
  if (!o.peers.length) throw new Error('give the other nodes with --peers ADDR,ADDR (a cluster needs three voters: a two-box site adds a witness nats-server)');
  const bundle = o.bundle ?? (await makeBundle([...(o.names ?? []), o.address, ...o.peers]));
  const written: string[] = [];
  // Run as root: every file goes to the owner of the data dir (the printbox service user, which also runs
  // printbox-nats), so the secrets stay 0600 and both services can read them.
  await fs.mkdir(o.dataDir, { recursive: true, mode: 0o700 });
  const owner = await fs.stat(o.dataDir);
  const put = async (file: string, data: string | Buffer, mode: number) => {
    await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o755 });
    await writeFileAtomic(file, data, mode);
    if (process.getuid?.() === 0) await fs.chown(file, owner.uid, owner.gid);
    written.push(file);
  };
  const tlsDir = path.join(o.etcDir, 'cluster-tls');
  await put(path.join(tlsDir, 'route-cert.pem'), bundle.route.cert, 0o644);
  await put(path.join(tlsDir, 'route-key.pem'), bundle.route.key, 0o600);
  await put(path.join(o.etcDir, 'nats-server.conf'), natsServerConfig({ node: o.node, address: o.address, peers: o.peers, storeDir: o.natsStoreDir, storeKey: randomBytes(32).toString('hex'), tlsDir }), 0o600);
  await put(path.join(o.dataDir, 'cluster.key'), Buffer.from(bundle.clusterKey, 'base64'), 0o600);
  // Every node serves the same certificate (marked custom: not replaced by the per-box one at start).
  await put(path.join(o.dataDir, 'tls', 'key.pem'), bundle.api.key, 0o600);
  await put(path.join(o.dataDir, 'tls', 'cert.pem'), bundle.api.cert, 0o644);
  await put(path.join(o.dataDir, 'tls', 'custom'), 'the cluster certificate, from `printbox cluster join`\n', 0o644);
  let cfg: Record<string, unknown> = {};
  try {
    cfg = JSON.parse(await fs.readFile(o.configFile, 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  cfg.cluster = { servers: ['nats://127.0.0.1:4222'], node: o.node, url: `https://${withPort(o.address, 31990)}` };
  await put(o.configFile, JSON.stringify(cfg, null, 2) + '\n', 0o644);
  let bundleFile: string | undefined;
  if (o.first) {
    bundleFile = path.join(o.dataDir, 'cluster-join.json');
    await put(bundleFile, JSON.stringify(bundle), 0o600);
  }
  return { written, bundleFile };
}
