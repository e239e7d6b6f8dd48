// systemd notify protocol (Type=notify): readiness, stopping and watchdog pings via systemd-notify.
import { execFile } from 'node:child_process';

function send(...args: string[]): void {
  if (!process.env.NOTIFY_SOCKET) return; // not under systemd
  // Node has no unix datagram sockets; systemd-notify sends for us (the unit sets NotifyAccess=all).
  execFile('systemd-notify', args, () => {});
}

export const notifyReady = (status: string) => send('--ready', `--status=${status}`);
export const notifyStopping = () => send('STOPPING=1');

export function startWatchdog(): () => void {
  const usec = Number(process.env.WATCHDOG_USEC);
  if (!process.env.NOTIFY_SOCKET || !usec) return () => {};
  const t = setInterval(() => send('WATCHDOG=1'), Math.max(1000, usec / 2000));
  t.unref();
  return () => clearInterval(t);
}
