#!/usr/bin/env node
// Entry point of the `printbox` command. Runs the bundled runtime (dist/printbox.mjs, made by bin/build.mjs)
// when it is there and not older than the sources; otherwise the TypeScript sources through tsx.
import fs from 'node:fs';
import path from 'node:path';

// fsyncs of concurrent uploads, journal writes and delivery reads share libuv's pool (4 threads by
// default); more threads let the kernel merge concurrent fsyncs. Must be set before the pool starts.
process.env.UV_THREADPOOL_SIZE ??= '16';

const root = path.resolve(import.meta.dirname, '..');
const bundled = path.join(root, 'dist', 'printbox.mjs');

function bundleIsFresh() {
  if (process.env.PRINTBOX_FROM_SOURCE === '1' || !fs.existsSync(bundled)) return false;
  if (!fs.existsSync(path.join(root, 'runtime', 'cli.ts'))) return true; // an installed package ships the bundle only
  const built = fs.statSync(bundled).mtimeMs;
  const newer = (dir) =>
    fs.readdirSync(dir, { withFileTypes: true }).some((e) => {
      const p = path.join(dir, e.name);
      return e.isDirectory() ? newer(p) : e.name.endsWith('.ts') && fs.statSync(p).mtimeMs > built;
    });
  return !newer(path.join(root, 'runtime')) && !newer(path.join(root, 'drivers'));
}

let main;
if (bundleIsFresh()) {
  ({ main } = await import(bundled));
} else {
  // A stale bundle costs ~25 MiB of RSS and start time through tsx: say so, and let benchmarks refuse it outright.
  const why = process.env.PRINTBOX_FROM_SOURCE === '1' ? '' : fs.existsSync(bundled) ? 'dist/printbox.mjs is older than the sources' : 'there is no dist/printbox.mjs';
  if (why && process.env.PRINTBOX_REQUIRE_BUNDLE === '1') {
    console.error(`printbox: ${why}; run \`node bin/build.mjs\` (PRINTBOX_REQUIRE_BUNDLE=1 refuses to run from the sources)`);
    process.exit(78);
  }
  if (why && fs.existsSync(bundled)) console.error(`printbox: ${why}; running the TypeScript sources through tsx (slower to start, more memory)`);
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import('../runtime/cli.ts'));
}
process.exitCode = await main(process.argv.slice(2));
