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

/**
 * Canonical text of a key, e.g. `ingress 256 6/80/24`; map states are keyed by it.
 *
 * @example Looking an entry up by key
 * ```ts
 * import { keyString } from '@datapath/policy';
 * console.log(keyString({ direction: 'ingress', identity: 256, protocol: 6, port: 80, prefixLen: 24 })); // 'ingress 256 6/80/24'
 * ```
 */
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
  const merged = new Map<string, { key: PolicyKey; deny: boolean; origins: string[]; owned: boolean }>();
  for (const r of raw) {
    const ks = keyString(r.key);
    const cur = merged.get(ks);
    if (!cur || (r.deny && !cur.deny))
      merged.set(ks, { key: r.key, deny: r.deny, origins: r.origins, owned: false });
    else if (r.deny === cur.deny)
      for (const o of r.origins) {
        if (cur.origins.includes(o)) continue;
        if (!cur.owned) {
          cur.origins = [...cur.origins];
          cur.owned = true;
        }
        cur.origins.push(o);
      }
  }
  // Deny keys by direction and identity, to test coverage arithmetically.
  const denies = new Map<string, PolicyKey[]>();
  for (const e of merged.values()) {
    if (!e.deny) continue;
    const k = `${e.key.direction} ${e.key.identity}`;
    const list = denies.get(k);
    if (list) list.push(e.key);
    else denies.set(k, [e.key]);
  }
  const covers = (d: PolicyKey, k: PolicyKey) =>
    d.prefixLen <= k.prefixLen &&
    (d.prefixLen === 0 || (d.protocol === k.protocol && maskPort(k.port, d.prefixLen) === d.port));
  const coveredByDeny = (k: PolicyKey, strict: boolean): boolean => {
    for (const id of k.identity === 0 ? [0] : [k.identity, 0]) {
      for (const d of denies.get(`${k.direction} ${id}`) ?? []) {
        if (strict && d === k) continue;
        if (covers(d, k)) return true;
      }
    }
    return false;
  };
  const out = new Map<string, MapEntry>();
  for (const [ks, e] of merged) {
    if (denies.size > 0 && coveredByDeny(e.key, e.deny)) continue;
    out.set(ks, {
      key: e.key,
      value: sharedValue(e.deny, e.key.prefixLen),
      origins: e.owned ? e.origins.sort() : e.origins,
    });
  }
  return out;
}

const VALUES = new Map<number, PolicyValue>();
/** Values are immutable and few (deny × prefix length): share them. */
function sharedValue(deny: boolean, prefixLen: number): PolicyValue {
  const k = (deny ? 32 : 0) + prefixLen;
  let v = VALUES.get(k);
  if (!v) {
    v = Object.freeze({ deny, prefixLen, proxyPort: 0, authType: 0 });
    VALUES.set(k, v);
  }
  return v;
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
