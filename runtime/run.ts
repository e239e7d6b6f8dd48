// `printbox serve`: runs until SIGTERM/SIGINT, then drains and exits; tells systemd when ready.
import type { Config } from './system/config.js';
import { serve } from './serve.js';
import { notifyReady, notifyStopping, startWatchdog } from './system/sdnotify.js';

export async function runServe(cfg: Config): Promise<number> {
  const running = await serve(cfg);
  notifyReady(`listening on port ${running.port}`);
  const stopWatchdog = startWatchdog();
  await new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      running.app.log.info({ signal: sig }, 'stopping');
      notifyStopping();
      resolve();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  stopWatchdog();
  await running.stop();
  return 0;
}
