// `printbox selftest`: proves on this machine that sealing, the spool and HTTPS work, in a throwaway data dir.
import fs from 'node:fs/promises';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { randomBytes, createHash } from 'node:crypto';
import type { Config } from './system/config.js';
import { serve } from './serve.js';
import { defaultBox } from './spool/seal.js';
import { loadSpoolKey } from './spool/keys.js';

export async function selftest(base: Config): Promise<number> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'printbox-selftest-'));
  const say = (m: string) => process.stdout.write(`selftest: ${m}\n`);
  let token = '';
  const running = await serve({ ...base, dataDir: dir, host: '127.0.0.1', port: 0, logLevel: 'warn', minFreeBytes: 0, mdns: false }, { firstToken: (t) => (token = t) });
  try {
    say(`crypto ${defaultBox.name}, HTTPS on 127.0.0.1:${running.port}`);
    const doc = randomBytes(300_000);
    const r = await running.app.spool.receive(Readable.from([doc]), 1 << 20);
    const chunks: Buffer[] = [];
    const tmpPath = r.tmp;
    if (!tmpPath) throw new Error('a 300 kB upload was not written to a temp file');
    await fs.rename(tmpPath, path.join(dir, 'selftest.sealed'));
    const sealed = await fs.readFile(path.join(dir, 'selftest.sealed'));
    if (sealed.includes(doc.subarray(0, 64))) throw new Error('sealed file contains plaintext');
    const { OpenStream } = await import('./spool/seal.js');
    const key = await loadSpoolKey(dir); // the same key the appliance used (a systemd credential when there is one)
    for await (const c of Readable.from([sealed]).pipe(new OpenStream(key))) chunks.push(c as Buffer);
    const same = createHash('sha256').update(Buffer.concat(chunks)).digest('hex') === createHash('sha256').update(doc).digest('hex');
    if (!same) throw new Error('opened document differs from what was sealed');
    say('sealed and opened a 300 kB document');
    // Trust exactly the certificate the appliance just made (as a LAN client pins it), by a name it carries.
    const status = await new Promise<number>((resolve, reject) => {
      const req = https.get({ host: '127.0.0.1', servername: 'localhost', port: running.port, path: '/v1/status', ca: running.tls.cert, headers: { authorization: `Bearer ${token}` } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
    });
    if (status !== 200) throw new Error(`HTTPS /v1/status answered ${status}`);
    say('HTTPS API answered with the first admin token');
    say('ok');
    return 0;
  } catch (err) {
    process.stderr.write(`selftest: FAILED: ${(err as Error).message}\n`);
    return 1;
  } finally {
    await running.stop();
    await fs.rm(dir, { recursive: true, force: true });
  }
}
