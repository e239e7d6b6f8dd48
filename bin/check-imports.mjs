#!/usr/bin/env node
// Fails on an import circle (type imports included) or an import against the direction of the job's path
// (README "Layout"): a circle means a small interface module is missing. Run by `npm test`.
import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
/** Which rooms a room may import from (besides itself). `drivers` knows nothing of the runtime. */
const ALLOWED = {
  'runtime/system': ['drivers'],
  'runtime/spool': ['runtime/system', 'drivers'],
  'runtime/discovery': ['runtime/system', 'drivers'],
  'runtime/convert': ['runtime/spool', 'runtime/system', 'drivers'],
  'runtime/intake': ['runtime/spool', 'runtime/system', 'runtime/convert', 'drivers'],
  'runtime/queue': ['runtime/spool', 'runtime/system', 'runtime/convert', 'drivers'],
  'runtime/cluster': ['runtime/spool', 'runtime/system', 'runtime/queue', 'drivers'],
  'runtime/api': ['runtime', 'runtime/intake', 'runtime/queue', 'runtime/spool', 'runtime/system', 'runtime/discovery', 'runtime/convert', 'runtime/cluster', 'drivers'],
  runtime: ['*'],
  drivers: [],
  'web/src': ['drivers', 'runtime/*'],
  bin: ['*'],
};
const DIRS = ['runtime', 'drivers', 'web/src', 'bin'];

function files(dir) {
  const out = [];
  for (const e of fs.readdirSync(path.join(root, dir), { withFileTypes: true })) {
    const rel = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...files(rel));
    else if (/\.(ts|tsx|mjs)$/.test(e.name) && !e.name.endsWith('.d.ts')) out.push(rel);
  }
  return out;
}

/** Relative imports of a file: { target, typeOnly }. Comment lines are skipped. */
function importsOf(file) {
  const text = fs.readFileSync(path.join(root, file), 'utf8').split('\n').filter((l) => !/^\s*(\/\/|\*|\/\*)/.test(l)).join('\n');
  const out = [];
  const re = /(?:^|[;\s])(import|export)\s+(type\s+)?(?:[^'";]*?\sfrom\s*)?['"](\.{1,2}\/[^'"]+)['"]|import\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g;
  for (const m of text.matchAll(re)) {
    const spec = m[3] ?? m[4];
    const base = path.join(path.dirname(file), spec).replace(/\.(js|mjs)$/, '');
    const target = [`${base}.ts`, `${base}.tsx`, `${base}.mjs`, base, `${base}/index.ts`].find((c) => fs.existsSync(path.join(root, c)) && fs.statSync(path.join(root, c)).isFile());
    if (target) out.push({ target, typeOnly: !!m[2] });
  }
  return out;
}

const roomOf = (file) => {
  const dir = path.dirname(file);
  return Object.keys(ALLOWED).filter((r) => dir === r || dir.startsWith(r + '/')).sort((a, b) => b.length - a.length)[0] ?? dir;
};

const graph = new Map();
const problems = [];
for (const f of DIRS.flatMap(files)) {
  const deps = importsOf(f);
  graph.set(f, deps.map((d) => d.target));
  const from = roomOf(f);
  for (const d of deps) {
    const to = roomOf(d.target);
    if (to === from) continue;
    const allowed = ALLOWED[from] ?? [];
    const ok = allowed.includes('*') || allowed.includes(to) || (allowed.includes('runtime/*') && to.startsWith('runtime'));
    if (!ok) problems.push(`${f} imports ${d.target}: ${from}/ may not import from ${to}/`);
    if (from === 'web/src' && to !== 'web/src' && !d.typeOnly) problems.push(`${f} imports ${d.target} as code: the setup page takes types only from the runtime`);
  }
}

// Tarjan's strongly connected components: every component of more than one file is a circle.
let index = 0;
const idx = new Map(), low = new Map(), stack = [], on = new Set();
function connect(v) {
  idx.set(v, index); low.set(v, index); index++; stack.push(v); on.add(v);
  for (const w of graph.get(v) ?? []) {
    if (!graph.has(w)) continue;
    if (!idx.has(w)) { connect(w); low.set(v, Math.min(low.get(v), low.get(w))); }
    else if (on.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
  }
  if (low.get(v) === idx.get(v)) {
    const comp = [];
    let w;
    do { w = stack.pop(); on.delete(w); comp.push(w); } while (w !== v);
    if (comp.length > 1 || (graph.get(v) ?? []).includes(v)) problems.push(`import circle: ${comp.sort().join(' ↔ ')}`);
  }
}
for (const v of graph.keys()) if (!idx.has(v)) connect(v);

if (problems.length) {
  console.error(`check-imports: ${problems.length} problem(s)\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.log(`check-imports: ${graph.size} files, no circles, every import along the job's path`);
