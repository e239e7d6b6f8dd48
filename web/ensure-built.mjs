#!/usr/bin/env node
// Builds the setup page when web/dist is missing or older than its sources (run by `npm start` before serving).
import fs from 'node:fs';
import path from 'node:path';

const web = import.meta.dirname;
const built = path.join(web, 'dist', 'index.html');

function newest(p) {
  const st = fs.statSync(p);
  if (!st.isDirectory()) return st.mtimeMs;
  return Math.max(st.mtimeMs, ...fs.readdirSync(p).map((n) => newest(path.join(p, n))));
}

const sources = ['index.html', 'src', 'public', 'vite.config.ts'].map((n) => path.join(web, n)).filter((p) => fs.existsSync(p));
const stale = !fs.existsSync(built) || Math.max(...sources.map(newest)) > fs.statSync(built).mtimeMs;
if (!stale) process.exit(0);
if (!fs.existsSync(path.join(web, 'src'))) process.exit(0); // a package that ships web/dist only
let vite;
try {
  vite = await import('vite');
} catch {
  console.error('printbox: the setup page is not built and vite is not installed (npm install); the API still works');
  process.exit(0);
}
console.error('printbox: building the setup page (web/dist)…');
await vite.build({ configFile: path.join(web, 'vite.config.ts'), logLevel: 'warn' });
