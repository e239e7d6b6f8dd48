// The short torture run (bench/torture.ts --quick) as part of the suite: kill -9 storms with batches, printer
// faults, a full disk, 1,000 malformed requests and the canary search, each against real spawned servers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '..');

test('torture --quick: nothing lost, nothing out of order, every bad request a JSON 4xx, no plaintext on disk', { timeout: 420_000 }, async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'bench/torture.ts'), '--quick'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (c) => (out += c));
  child.stderr.on('data', (c) => (out += c));
  const timer = setTimeout(() => child.kill('SIGKILL'), 400_000);
  const code = await new Promise<number | null>((r) => child.on('close', r));
  clearTimeout(timer);
  // The scenario summaries go into the test log: the figures of every CI run.
  for (const line of out.split('\n').filter((l) => /^(crash|faults|disk|bad-input|secrets|total elapsed)\b/.test(l))) console.log(line);
  assert.equal(code, 0, `torture --quick failed:\n${out.slice(-4000)}`);
  for (const s of ['crash:', 'faults:', 'disk:', 'bad-input:', 'secrets:']) assert.ok(out.includes(s), `no ${s} summary`);
  assert.match(out, /all scenarios held/);
});
