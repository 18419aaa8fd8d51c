/** Traffic direction of a policy map entry, as seen from the endpoint that owns the map. */
export type Direction = 'ingress' | 'egress';

/**
 * A policy map key in Cilium's LPM model: peer identity (0 = any), direction, and a protocol/port prefix.
 * `prefixLen` counts the significant bits of protocol (8) + port (16): 0 = any protocol and port,
 * 8 = protocol only, 24 = exact port, 8+k = a 2^(16-k)-port aligned block starting at `port`.
 */
export interface PolicyKey {
  /** Ingress or egress of the endpoint owning the map. */
  direction: Direction;
  /** Peer security identity; 0 = any. */
  identity: number;
  /** IANA protocol number; 0 = any (only with `prefixLen` 0). */
  protocol: number;
  /** Destination port (first port of the block for a shorter prefix). */
  port: number;
  /** Significant bits of protocol + port, 0–24. */
  prefixLen: number;
}

/** A policy map value: allow or deny, plus the key's L4 prefix length (so the datapath knows how specific it is). */
export interface PolicyValue {
  /** True for a deny entry. */
  deny: boolean;
  /** Same as the key's `prefixLen` (0–24). */
  prefixLen: number;
  /** L7 proxy port (always 0: no L7 support). */
  proxyPort: number;
  /** Authentication type (always 0). */
  authType: number;
}

/** One entry of a compiled policy map, with the rules it came from (for explanations; not written to the map). */
export interface MapEntry {
  /** The key. */
  key: PolicyKey;
  /** The value. */
  value: PolicyValue;
  /** The rule items that produced it (e.g. `NetworkPolicy x/web ingress[0]`). */
  origins: readonly string[];
}

/** A compiled per-endpoint policy map: entries by {@link keyString}. */
export type MapState = ReadonlyMap<string, MapEntry>;

/** Canonical text of a key, e.g. `ingress 256 6/80/24`; map states are keyed by it. */
export function keyString(k: PolicyKey): string {
  return `${k.direction} ${k.identity} ${k.protocol}/${k.port}/${k.prefixLen}`;
}

function maskPort(port: number, prefixLen: number): number {
  if (prefixLen <= 8) return 0;
  const keep = prefixLen - 8;
  return port & ((0xffff << (16 - keep)) & 0xffff);
}

/** The minimal list of aligned (port, prefixLen) blocks covering an inclusive port range; `0..0` = any port. */
export function portRangePrefixes(from: number, to: number): { port: number; prefixLen: number }[] {
  if (from === 0 && to === 0) return [{ port: 0, prefixLen: 8 }];
  const out: { port: number; prefixLen: number }[] = [];
  let p = from;
  while (p <= to) {
    let size = 1;
    let bits = 0;
    while (bits < 16 && p % (size * 2) === 0 && p + size * 2 - 1 <= to) {
      size *= 2;
      bits++;
    }
    out.push({ port: p, prefixLen: 24 - bits });
    p += size;
  }
  return out;
}

/** Prefix lengths that can occur in a key, most specific first (protocol 0 only with prefix 0). */
const LENGTHS = [24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 0];

/** The keys that would cover (dir, id, proto, port), most specific first. */
function coveringKeys(
  direction: Direction,
  identity: number,
  protocol: number,
  port: number,
  upTo = 24,
): string[] {
  const out: string[] = [];
  for (const len of LENGTHS) {
    if (len > upTo) continue;
    const proto = len === 0 ? 0 : protocol;
    out.push(`${direction} ${identity} ${proto}/${maskPort(port, len)}/${len}`);
  }
  return out;
}

/**
 * One LPM lookup in a policy map: the most specific entry for exactly this identity covering (protocol, port).
 * This is what `bpf_map_lookup_elem` on an LPM trie returns.
 */
export function lpmLookup(
  map: MapState,
  direction: Direction,
  identity: number,
  protocol: number,
  port: number,
): MapEntry | undefined {
  for (const k of coveringKeys(direction, identity, protocol, port)) {
    const e = map.get(k);
    if (e) return e;
  }
  return undefined;
}

/** The outcome of a datapath policy lookup. */
export interface LookupResult {
  /** `allow`, `deny` (a deny entry matched) or `drop` (no entry: default deny). */
  decision: 'allow' | 'deny' | 'drop';
  /** The entry that decided (absent for `drop`). */
  entry?: MapEntry;
  /** The entry found with the peer's own identity, if any. */
  l3?: MapEntry;
  /** The entry found with identity 0, if any. */
  wildcard?: MapEntry;
}

/**
 * The datapath's policy decision for one packet, exactly as `__policy_can_access` makes it: look up the peer's
 * identity, then identity 0; a deny wins; otherwise the more specific L4 entry wins, on a tie the L3 one.
 *
 * @example Looking up a flow in a compiled map
 * ```ts
 * import { policyLookup } from '@datapath/policy';
 * const r = policyLookup(new Map(), 'ingress', 256, 6, 80);
 * console.log(r.decision); // 'drop'
 * ```
 */
export function policyLookup(
  map: MapState,
  direction: Direction,
  identity: number,
  protocol: number,
  port: number,
): LookupResult {
  const l3 = identity === 0 ? undefined : lpmLookup(map, direction, identity, protocol, port);
  const wildcard = lpmLookup(map, direction, 0, protocol, port);
  const base = { ...(l3 ? { l3 } : {}), ...(wildcard ? { wildcard } : {}) };
  if (!l3 && !wildcard) return { decision: 'drop' };
  if (l3?.value.deny) return { decision: 'deny', entry: l3, ...base };
  if (wildcard?.value.deny) return { decision: 'deny', entry: wildcard, ...base };
  const entry = !wildcard
    ? l3!
    : !l3
      ? wildcard
      : wildcard.value.prefixLen > l3.value.prefixLen
        ? wildcard
        : l3;
  return { decision: 'allow', entry, ...base };
}

/** A raw entry before pruning. */
export interface RawEntry {
  key: PolicyKey;
  deny: boolean;
  origins: string[];
}

/**
 * Builds the final map from raw allow/deny entries with Cilium's insertion rules: a deny overwrites an allow on
 * the same key; a deny covered by a broader deny (same or wildcard identity) is dropped; an allow covered by a
 * broader-or-equal deny (same or wildcard identity) is dropped. The result answers {@link policyLookup} exactly as
 * the rules say: denied iff some deny covers the flow, else allowed iff some allow covers it.
 */
export function buildMapState(raw: Iterable<RawEntry>): Map<string, MapEntry> {
  const merged = new Map<string, RawEntry>();
  for (const r of raw) {
    const ks = keyString(r.key);
    const cur = merged.get(ks);
    if (!cur) merged.set(ks, { key: r.key, deny: r.deny, origins: [...r.origins] });
    else if (r.deny && !cur.deny) merged.set(ks, { key: r.key, deny: true, origins: [...r.origins] });
    else if (r.deny === cur.deny)
      for (const o of r.origins) if (!cur.origins.includes(o)) cur.origins.push(o);
  }
  const denies = new Set<string>();
  for (const [ks, e] of merged) if (e.deny) denies.add(ks);
  const coveredByDeny = (k: PolicyKey, strict: boolean): boolean => {
    for (const id of k.identity === 0 ? [0] : [k.identity, 0]) {
      for (const c of coveringKeys(k.direction, id, k.protocol, k.port, k.prefixLen)) {
        if (strict && id === k.identity && c === keyString(k)) continue;
        if (denies.has(c)) return true;
      }
    }
    return false;
  };
  const out = new Map<string, MapEntry>();
  const keys = [...merged.keys()].sort();
  for (const ks of keys) {
    const e = merged.get(ks)!;
    if (coveredByDeny(e.key, e.deny)) continue;
    out.set(ks, {
      key: e.key,
      value: { deny: e.deny, prefixLen: e.key.prefixLen, proxyPort: 0, authType: 0 },
      origins: e.origins.sort(),
    });
  }
  return out;
}

/** True when two values would be written identically. */
export function sameValue(a: PolicyValue, b: PolicyValue): boolean {
  return (
    a.deny === b.deny &&
    a.prefixLen === b.prefixLen &&
    a.proxyPort === b.proxyPort &&
    a.authType === b.authType
  );
}
