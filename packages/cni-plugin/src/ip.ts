// Small address helpers for results and configs (no dependency, no sockets).

const V4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** 4 or 6 for a valid IP address literal, 0 otherwise. */
export function ipFamily(ip: string): 0 | 4 | 6 {
  if (V4.test(ip)) return 4;
  if (!ip.includes(':') || ip.includes('%') || ip.includes('[')) return 0;
  try {
    new URL(`http://[${ip}]/`);
    return 6;
  } catch {
    return 0;
  }
}

/** 4 or 6 for a valid `address/prefix` (prefix within the family's width), 0 otherwise. */
export function cidrFamily(cidr: string): 0 | 4 | 6 {
  const slash = cidr.indexOf('/');
  if (slash < 0) return 0;
  const fam = ipFamily(cidr.slice(0, slash));
  const len = cidr.slice(slash + 1);
  if (fam === 0 || !/^\d{1,3}$/.test(len)) return 0;
  return Number(len) <= (fam === 4 ? 32 : 128) ? fam : 0;
}
