#!/usr/bin/env node
// Bundles the runtime into dist/printbox.mjs with esbuild (run by `npm start` and `npm test` when the bundle
// is missing or older than its sources). The appliance then starts without a TypeScript loader: ~30 MiB
// less resident memory and a faster start. Native modules stay outside the bundle.
import fs from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';

const root = path.resolve(import.meta.dirname, '..');
const out = path.join(root, 'dist', 'printbox.mjs');

export function newestSource() {
  const newest = (p) => {
    const st = fs.statSync(p);
    if (!st.isDirectory()) return /\.(ts|json)$/.test(p) ? st.mtimeMs : 0;
    return Math.max(0, ...fs.readdirSync(p).map((n) => newest(path.join(p, n))));
  };
  return Math.max(0, ...['runtime', 'drivers', 'package.json'].map((d) => path.join(root, d)).filter(fs.existsSync).map(newest));
}

export async function bundle() {
  await build({
    entryPoints: [path.join(root, 'runtime', 'cli.ts')],
    outfile: out,
    absWorkingDir: root, // module names in the bundle are relative to this: the same bytes from any directory
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    sourcemap: 'linked', // stack traces in the journal point at runtime/*.ts
    // V8 keeps each module's source text in memory; one non-ASCII character (an arrow in a comment, a "°"
    // in a regex) makes the whole 4 MB text two bytes per character. ASCII escapes and no comments keep it
    // one byte per character and shorter: ~8 MiB less resident memory for the life of the process.
    charset: 'ascii',
    minifyWhitespace: true,
    legalComments: 'external', // dist/printbox.mjs.LEGAL.txt
    // Native addons and loaders that must be resolved at run time from node_modules.
    external: ['sodium-native', 'serialport', '@serialport/*', 'tsx', 'tsx/*', 'vite', 'esbuild'],
    // CommonJS dependencies call require(); an ES module bundle has to provide it.
    banner: { js: "import { createRequire as __pbxRequire } from 'node:module'; const require = __pbxRequire(import.meta.url);" },
    logLevel: 'warning',
  });
  // esbuild leaves regular expression literals as written (systeminformation has /[^°]/); an escape means the
  // same there and in strings, so the text becomes pure ASCII (columns after it on that line shift by a few).
  const text = fs.readFileSync(out, 'utf8');
  if (/[^\x00-\x7f]/.test(text)) {
    const ascii = text.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
    fs.writeFileSync(out, ascii);
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(import.meta.filename)) {
  const force = process.argv.includes('--force');
  const fresh = fs.existsSync(out) && fs.statSync(out).mtimeMs >= newestSource();
  if (force || !fresh) {
    const t0 = Date.now();
    await bundle();
    console.error(`printbox: bundled the runtime into dist/printbox.mjs in ${Date.now() - t0} ms`);
  }
}
