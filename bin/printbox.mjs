#!/usr/bin/env node
// Entry point of the `printbox` command: loads the TypeScript sources through tsx.
// fsyncs of concurrent uploads, journal writes and delivery reads share libuv's pool (4 threads by
// default); more threads let the kernel merge concurrent fsyncs. Must be set before the pool starts.
process.env.UV_THREADPOOL_SIZE ??= '16';
const { register } = await import('tsx/esm/api');

register();
const { main } = await import('../runtime/cli.ts');
process.exitCode = await main(process.argv.slice(2));
