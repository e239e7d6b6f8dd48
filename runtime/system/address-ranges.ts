// Address ranges from the config ("10.0.0.0/8", "192.168.1.20", "fd00::/8"): one matcher for every allow list
// (legacy intake `allow`, anonymous submit, callback targets), built on node's BlockList.
import net from 'node:net';

export class AddressRanges {
  private list = new net.BlockList();
  readonly size: number;

  /** Throws a plain Error naming the entry that is not an address or CIDR range. */
  constructor(readonly entries: readonly string[]) {
    for (const e of entries) {
      const [addr, bits, extra] = e.trim().split('/');
      const family = net.isIP(addr);
      const prefix = bits === undefined ? (family === 6 ? 128 : 32) : Number(bits);
      if (!family || extra !== undefined || !Number.isInteger(prefix) || prefix < 0 || prefix > (family === 6 ? 128 : 32) || (bits !== undefined && !/^\d+$/.test(bits))) {
        throw new Error(`"${e}" is not an IP address or CIDR range like 10.0.0.0/8`);
      }
      this.list.addSubnet(addr, prefix, family === 6 ? 'ipv6' : 'ipv4');
    }
    this.size = entries.length;
  }

  /** Whether an address (as a socket reports it, IPv4-mapped IPv6 included) is in one of the ranges. */
  has(address: string | undefined): boolean {
    if (!address) return false;
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
    const a = mapped ? mapped[1] : address.replace(/%.*$/, '');
    const family = net.isIP(a);
    if (!family) return false;
    return this.list.check(a, family === 6 ? 'ipv6' : 'ipv4');
  }
}
