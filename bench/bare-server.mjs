// The least a Node.js print server can do per job, as a floor for the CUPS comparison (bench/run.ts, section B):
// an HTTPS keep-alive POST is read whole, appended to one file and fdatasync'd, answered 201, and then sent to
// the printer over TCP, one job after another. No token check, no multipart parsing, no sealing, no job record,
// no status: anything a real server does costs more than this.
// Usage: node bench/bare-server.mjs PORT SINK_PORT DIR CERT_PEM KEY_PEM   (prints "bare listening" when ready)
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';

const [port, sinkPort, dir, certFile, keyFile] = process.argv.slice(2);
const log = await fs.promises.open(`${dir}/bare.log`, 'a', 0o600);
let line = Promise.resolve(); // one printer: jobs go out strictly one after another

function forward(body) {
  return new Promise((resolve) => {
    const sock = net.connect(Number(sinkPort), '127.0.0.1', () => sock.end(body));
    sock.on('close', resolve);
    sock.on('error', resolve);
    sock.resume();
  });
}

const server = https.createServer({ cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile), keepAlive: true }, (req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    const body = Buffer.concat(chunks);
    try {
      await log.write(body);
      await log.datasync();
    } catch (err) {
      res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: String(err) }));
      return;
    }
    res.writeHead(201, { 'content-type': 'application/json' }).end('{"state":"queued"}');
    line = line.then(() => forward(body));
  });
});
server.listen(Number(port), '127.0.0.1', () => console.log('bare listening'));
process.on('SIGTERM', () => process.exit(0));
