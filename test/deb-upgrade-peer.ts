// image/test-deb.sh's side of the upgrade test: a RAW printer (the tests' TCP sink) and an HTTPS client for the
// appliance installed from the .deb. Not a test file itself; run with `node --import tsx test/deb-upgrade-peer.ts`.
//
//   printer PORT_FILE JOBS_FILE    a sink that refuses connections (a printer that is off) until SIGUSR1;
//                                  writes its port to PORT_FILE, then "sha256 size" per printed job to JOBS_FILE
//   submit BASE CERT TOKEN PRINTER FILE    waits for /v1/health, posts FILE as a job, prints the job id
//   wait BASE CERT TOKEN JOB STATES SECONDS    polls the job until its state is one of STATES (comma-separated;
//                                  "attempted": at least one delivery attempt made)
import fs from 'node:fs';
import { Api } from './helpers/api.js';
import { startSink } from './peers/tcp-sink.js';
import { until } from './peers/ports.js';

const [cmd, ...args] = process.argv.slice(2);

async function printer(portFile: string, jobsFile: string): Promise<void> {
  const sink = await startSink({ behaviour: 'refuse' });
  fs.writeFileSync(jobsFile, '');
  fs.writeFileSync(portFile, `${sink.port}\n`);
  process.on('SIGUSR1', () => void sink.setBehaviour('normal'));
  let written = 0;
  const poll = setInterval(() => {
    for (; written < sink.jobs.length; written++) fs.appendFileSync(jobsFile, `${sink.jobs[written].sha256} ${sink.jobs[written].size}\n`);
  }, 100);
  // Bounded: the test kills it; if the test dies first it still ends.
  const stop = () => {
    clearInterval(poll);
    void sink.close().then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  setTimeout(stop, 900_000).unref();
  await new Promise(() => {});
}

function api(base: string, certFile: string, token: string): Api {
  return new Api(base, fs.readFileSync(certFile, 'utf8'), token);
}

async function submit(base: string, certFile: string, token: string, printerName: string, file: string): Promise<void> {
  // The appliance makes its certificate on its first start.
  await until(`the appliance's certificate ${certFile}`, () => fs.existsSync(certFile), 60_000, 250);
  const client = api(base, certFile, token);
  await until('/v1/health', () => client.request('GET', '/v1/health').then((r) => r.status === 200, () => false), 60_000, 250);
  const res = await client.postJob({ printer: printerName, title: 'upgrade test' }, fs.readFileSync(file));
  client.close();
  if (res.status !== 201) throw new Error(`POST /v1/jobs answered ${res.status}: ${res.text}`);
  process.stdout.write(`${res.json.jobID ?? res.json.id}\n`);
}

async function wait(base: string, certFile: string, token: string, job: string, states: string, seconds: string): Promise<void> {
  const client = api(base, certFile, token);
  const wanted = new Set(states.split(','));
  let last = '';
  try {
    await until(`job ${job} in state ${states} (last: ${last || 'no answer'})`, async () => {
      const res = await client.request('GET', `/v1/jobs/${job}`).catch(() => undefined);
      last = res?.json?.state ?? last;
      return res?.status === 200 && (wanted.has(res.json.state) || (wanted.has('attempted') && res.json.attempts >= 1));
    }, Number(seconds) * 1000, 250);
  } finally {
    client.close();
  }
  process.stdout.write(`${last}\n`);
}

const commands: Record<string, (...a: string[]) => Promise<void>> = { printer, submit, wait };
if (!commands[cmd]) {
  process.stderr.write('usage: deb-upgrade-peer.ts printer|submit|wait ...\n');
  process.exit(2);
}
commands[cmd](...args).catch((err) => {
  process.stderr.write(`deb-upgrade-peer ${cmd}: ${err.message}\n`);
  process.exit(1);
});
