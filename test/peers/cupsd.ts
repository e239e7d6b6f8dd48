// A private cupsd's file layout (own spool, cache, state and logs under one dir), shared by the LPD peer and bench/.
import fs from 'node:fs/promises';
import path from 'node:path';

/** Creates the directories and writes `<dir>/cups-files.conf`; the caller writes its own cupsd.conf. */
export async function writeCupsFiles(dir: string): Promise<string> {
  for (const d of ['spool/tmp', 'cache', 'state', 'log']) await fs.mkdir(path.join(dir, d), { recursive: true });
  const file = path.join(dir, 'cups-files.conf');
  const lines = [
    `ServerRoot ${dir}`,
    `RequestRoot ${dir}/spool`,
    `TempDir ${dir}/spool/tmp`,
    `CacheDir ${dir}/cache`,
    `StateDir ${dir}/state`,
    `ErrorLog ${dir}/log/error_log`,
    `AccessLog ${dir}/log/access_log`,
    `PageLog ${dir}/log/page_log`,
    'SystemGroup root',
    '',
  ];
  await fs.writeFile(file, lines.join('\n'));
  return file;
}
