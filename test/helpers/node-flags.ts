// The node flags and environment an installed appliance runs with (package.json "start", the systemd unit, the `printbox` wrapper): tests and benchmarks spawn what ships.
export const SERVER_NODE_FLAGS = (process.env.PBX_FLAGS ?? '--max-semi-space-size=1 --max-old-space-size=1024 --no-allocation-site-pretenuring').split(' ').filter(Boolean);
/** glibc: at most two malloc arenas, not one per thread of libuv's pool (see the README, "Memory"). */
export const SERVER_ENV: Record<string, string> = { MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX ?? '2' };
