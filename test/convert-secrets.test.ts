// Converted documents leave no plaintext behind: a canary inside them is never in the data dir, the temp dir, /dev/shm
// or the logs — looked for while a conversion runs (its document is in RAM then) and after every job has finished.
// The appliance gets a temp dir of its own (TMPDIR) that stands for /tmp: the machine's /tmp is shared with other
// programs, and any temp file printbox or a converter it starts made would land in TMPDIR.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { Api } from './helpers/api.js';
import { freePort, spawnAppliance, tempDir, until } from './helpers/appliance.js';
import { pdf } from './helpers/documents.js';
import { startSink } from './peers/tcp-sink.js';

/** Files under `dir` changed since `since` (other programs' old files are not ours to read), up to 64 MiB each. */
async function recentFiles(dir: string, since: number, out: string[] = [], depth = 0): Promise<string[]> {
  // Other test runs create and delete files here as we walk: whatever vanishes meanwhile is skipped, not fatal.
  const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const e of entries) {
    const f = path.join(dir, e.name);
    if (e.isDirectory() && depth < 12) await recentFiles(f, since, out, depth + 1);
    else if (e.isFile()) {
      const st = await fs.stat(f).catch(() => null);
      if (st && st.mtimeMs >= since - 1000 && st.size < 64 * 1024 * 1024) out.push(f);
    }
  }
  return out;
}

async function filesWith(needle: string, dirs: string[], since: number): Promise<string[]> {
  const hits: string[] = [];
  for (const d of dirs) {
    for (const f of await recentFiles(d, since)) {
      const b = await fs.readFile(f).catch(() => null);
      if (b?.includes(needle)) hits.push(f);
    }
  }
  return hits;
}

test('a canary inside converted documents is never on disk, in /dev/shm or in the logs', async () => {
  const since = Date.now();
  const canary = `CANARY${randomBytes(8).toString('hex').toUpperCase()}`;
  const dataDir = await tempDir('pbx17-canary-');
  const sink = await startSink();
  const tmp = await tempDir('pbx17-tmp-');
  const box = await spawnAppliance(dataDir, await freePort(), { PRINTBOX_CONVERT_TIMEOUT_MS: '4000', TMPDIR: tmp });
  const cert = await fs.readFile(path.join(dataDir, 'tls/cert.pem'), 'utf8');
  const api = new Api(`https://127.0.0.1:${box.port}`, cert, box.token);
  try {
    for (const [name, accepts] of [['pcl', 'application/vnd.hp-pcl'], ['ps', 'application/postscript'], ['zpl', 'application/vnd.zebra-zpl']]) {
      const r = await api.json('POST', '/v1/printers', { name, uri: `raw://127.0.0.1:${sink.port}`, accepts: [accepts] });
      assert.equal(r.status, 201, r.text);
    }
    const doc = await pdf(2, canary);
    assert.ok(doc.includes(canary), 'the test PDF holds the canary as plain bytes');
    // A converter that hangs keeps its document in RAM while we look.
    const hang = await api.postJob({ printer: 'pcl', title: 'hang' }, Buffer.from(`%!PS\n% ${canary}\n{ 1 pop } loop\n`));
    assert.equal(hang.status, 201);
    await until('the hanging conversion to start', async () => (await api.json('GET', `/v1/jobs/${hang.json.jobID}`)).json.state === 'sending');
    await new Promise((r) => setTimeout(r, 300));
    assert.ok((await recentFiles(dataDir, since)).length > 0, 'the walk sees the data dir');
    assert.deepEqual(await filesWith(canary, ['/dev/shm', tmp, dataDir], since), [], 'while converting');
    const ids = [hang.json.jobID];
    for (const [printer, body, contentType] of [['pcl', doc, 'pdf'], ['ps', doc, 'pdf'], ['zpl', doc, 'pdf'], ['pcl', Buffer.from(`text ${canary}\n`), 'text']] as const) {
      const r = await api.postJob({ printer, title: 'secret', contentType }, body);
      assert.equal(r.status, 201, r.text);
      ids.push(r.json.jobID);
    }
    const states = [];
    for (const id of ids) {
      states.push(await until(`job ${id}`, async () => {
        const j = (await api.json('GET', `/v1/jobs/${id}`)).json;
        return ['sent', 'failed'].includes(j.state) ? j.state : undefined;
      }, 60000));
    }
    assert.deepEqual(states, ['failed', 'sent', 'sent', 'sent', 'sent']);
    assert.deepEqual(await filesWith(canary, ['/dev/shm', tmp, dataDir], since), [], 'after the jobs');
    assert.ok(!box.output().includes(canary), 'not in the logs');
    assert.match(box.output(), /job failed/); // the logs were captured at all
  } finally {
    api.close();
    await box.stop();
    await sink.close();
    await fs.rm(dataDir, { recursive: true, force: true });
    await fs.rm(tmp, { recursive: true, force: true });
  }
});
