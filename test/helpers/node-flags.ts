// The node flags an installed appliance runs with (package.json "start", the systemd unit): tests and benchmarks spawn what ships.
export const SERVER_NODE_FLAGS = (process.env.PBX_FLAGS ?? '--max-semi-space-size=1').split(' ').filter(Boolean);
