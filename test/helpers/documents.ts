// Test documents made by Ghostscript itself from PostScript source, in memory (pipes only: no plaintext in /tmp).
import { spawn } from 'node:child_process';

/** Runs gs with `input` on stdin and returns its stdout; TMPDIR on tmpfs so pdfwrite's scratch files stay in RAM. */
export function gs(args: string[], input: Buffer | string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const p = spawn('gs', ['-q', '-dSAFER', '-dBATCH', '-dNOPAUSE', ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, TMPDIR: '/dev/shm' } });
    const out: Buffer[] = [];
    let err = '';
    p.stdout.on('data', (c) => out.push(c));
    p.stderr.on('data', (c) => (err += c));
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve(Buffer.concat(out)) : reject(new Error(`gs exited ${code}: ${err}`))));
    p.stdin.on('error', () => {});
    p.stdin.end(input);
  });
}

/** PostScript with `pages` pages, each saying "Page N" and `text`, in Helvetica. */
export function postscript(pages: number, text = ''): string {
  const esc = (s: string) => s.replace(/[\\()]/g, (c) => `\\${c}`);
  let ps = '%!PS-Adobe-3.0\n%%Pages: ' + pages + '\n/Helvetica findfont 20 scalefont setfont\n';
  for (let i = 1; i <= pages; i++) ps += `72 700 moveto (Page ${i} ${esc(text)}) show 72 100 moveto 400 0 rlineto stroke showpage\n`;
  return ps;
}

/** A PDF with `pages` pages; uncompressed, so `text` sits in it as plain bytes (what a canary test needs). */
export function pdf(pages: number, text = ''): Promise<Buffer> {
  return gs(['-sDEVICE=pdfwrite', '-dCompressPages=false', '-sOutputFile=-', '-'], postscript(pages, text));
}

/** Text a PDF or PostScript document draws, as Ghostscript reads it back (txtwrite). */
export async function textOf(doc: Buffer): Promise<string> {
  return (await gs(['-sDEVICE=txtwrite', '-sOutputFile=-', '-'], doc)).toString('utf8');
}
