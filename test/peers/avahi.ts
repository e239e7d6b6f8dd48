// A real avahi-daemon inside a test network namespace, on a private D-Bus, to prove printbox's mDNS coexists with it.
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Netns, NetnsPair, NsProcess } from './netns.js';

export interface Avahi {
  hostName: string;
  /** DBUS_SYSTEM_BUS_ADDRESS for avahi-browse / avahi-publish talking to this daemon. */
  bus: string;
  /** Publishes a service through this avahi (avahi-publish -s); resolves once avahi says it is established. */
  publish(name: string, type: string, port: number, txt: string[], subtype?: string): Promise<NsProcess>;
  /** `avahi-browse -rpt TYPE`: avahi's own view of the LAN, resolved ('=' lines, split on ';'). */
  browse(type: string): Promise<string[][]>;
  stop(): Promise<void>;
}

/** Why avahi cannot run here, or null. The .ci/run machine installs avahi-daemon, avahi-utils and dbus. */
export function avahiUnavailable(): string | null {
  for (const bin of ['/usr/sbin/avahi-daemon', '/usr/bin/avahi-publish', '/usr/bin/avahi-browse', '/usr/bin/dbus-daemon']) {
    if (!existsSync(bin)) return `${bin} is not installed (apt packages avahi-daemon avahi-utils dbus)`;
  }
  return null;
}

export async function startAvahi(pair: NetnsPair, ns: Netns, hostName: string): Promise<Avahi> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pbx-avahi-'));
  const busPath = path.join(dir, 'bus');
  const bus = `unix:path=${busPath}`;
  const env = { DBUS_SYSTEM_BUS_ADDRESS: bus };
  // The session config lets anyone own any name, so avahi may take org.freedesktop.Avahi on this private bus.
  const dbus = pair.exec(ns, 'dbus-daemon', ['--session', `--address=${bus}`, '--nofork', '--nopidfile']);
  const until = Date.now() + 5000;
  while (!existsSync(busPath) && Date.now() < until) await new Promise((r) => setTimeout(r, 25));
  if (!existsSync(busPath)) throw new Error(`private dbus-daemon did not start\n${dbus.log()}`);

  const conf = path.join(dir, 'avahi-daemon.conf');
  await writeFile(
    conf,
    [
      '[server]',
      `host-name=${hostName}`,
      'domain-name=local',
      'use-ipv4=yes',
      'use-ipv6=no',
      `allow-interfaces=${ns.dev}`,
      'enable-dbus=yes',
      '[wide-area]',
      'enable-wide-area=no',
      '[publish]',
      'publish-hinfo=no',
      'publish-workstation=no',
      '',
    ].join('\n'),
  );
  // `ip netns exec` already gave us a private mount namespace: a tmpfs on /run keeps avahi's pid file and
  // socket away from any avahi on the host (it refuses to start when /run/avahi-daemon/pid is taken).
  const daemon = pair.exec(
    ns,
    'sh',
    ['-c', `mount -t tmpfs tmpfs /run && mkdir -p /run/avahi-daemon && exec avahi-daemon --no-drop-root --no-chroot --no-rlimits --no-proc-title -f ${conf}`],
    env,
  );
  await daemon.waitForText('Server startup complete', 10_000);

  return {
    hostName,
    bus,
    async publish(name, type, port, txt, subtype) {
      const args = ['-s', ...(subtype ? [`--subtype=${subtype}`] : []), name, type, String(port), ...txt];
      const p = pair.exec(ns, 'avahi-publish', args, env);
      await p.waitForText('Established under name', 10_000);
      return p;
    },
    async browse(type) {
      const p = pair.exec(ns, 'avahi-browse', ['-rpt', type], env);
      const t = setTimeout(() => p.signal('SIGKILL'), 10_000);
      await p.exited;
      clearTimeout(t);
      return p
        .stdout()
        .split('\n')
        .filter((l) => l.startsWith('='))
        .map((l) => l.split(';'));
    },
    async stop() {
      await daemon.stop();
      await dbus.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
