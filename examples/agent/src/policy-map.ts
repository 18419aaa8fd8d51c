/**
 * The agent's policy trie and ipcache typed as @datapath/policy's `MapChange`s speak: every policy or ipcache
 * read and write of the agent goes through these codecs.
 *
 * The policy trie's bytes are the generated codecs of `struct lxc_policy_key` and `struct policy_entry`
 * (datapath.gen.ts, from bpf/datapath.h's BTF); this module only maps the engine's {@link PolicyKey} and
 * {@link PolicyValue} onto their fields (no byte layout is written here). The key is Cilium's `policy_key`
 * with the endpoint id put in front of it, so that one LPM trie holds every endpoint's policy: `prefixlen` =
 * `LXC_POLICY_STATIC_PREFIX` (endpoint id, identity and direction: 72 bits) + the entry's protocol/port prefix.
 */
import type { Codec } from '@datapath/bpf-maps';
import { formatIp, ipToBytes, tryParseIp } from '@datapath/ip';
import {
  decodeIpcacheKey,
  decodeIpcacheValue,
  encodeIpcacheKey,
  encodeIpcacheValue,
  IPCACHE_KEY_SIZE,
  IPCACHE_VALUE_SIZE,
  type IpcacheValue,
  type PolicyKey,
  type PolicyValue,
} from '@datapath/policy';
import {
  type LxcPolicyKey,
  LxcPolicyPrefix,
  lxcPolicyKey,
  type PolicyEntry,
  policyEntry,
} from './datapath.gen.js';
import { AgentError } from './errors.js';

/** A key of the shared policy trie: which endpoint, and Cilium's policy key. */
export interface EndpointPolicyKey {
  /** Endpoint id (the pod's `lxcId`, the engine's `endpointId`). */
  lxcId: number;
  /** Cilium's policy key. */
  key: PolicyKey;
}

const { LXC_POLICY_STATIC_PREFIX, LXC_POLICY_FULL_PREFIX } = LxcPolicyPrefix;
/** Bits of protocol and port: the longest protocol/port prefix. */
const L4_BITS = LXC_POLICY_FULL_PREFIX - LXC_POLICY_STATIC_PREFIX;

/** A codec of `T` through a generated codec of the C struct `S` and two field mappings. */
function mapped<T, S>(c: Codec<S>, to: (v: T) => S, from: (s: S) => T): Codec<T> {
  return {
    size: c.size,
    align: c.align,
    encode: (v, view, offset) => c.encode(to(v), view, offset),
    decode: (view, offset) => from(c.decode(view, offset)),
  };
}

function l4PrefixLen(n: number, what: string): number {
  if (!Number.isInteger(n) || n < 0 || n > L4_BITS)
    throw new AgentError(
      'InvalidArgument',
      `${what}: protocol/port prefix length ${n} is not in 0..${L4_BITS}`,
    );
  return n;
}

/** The engine's key of endpoint `lxcId` as the fields of `struct lxc_policy_key`. */
export function toLxcPolicyKey({ lxcId, key }: EndpointPolicyKey): LxcPolicyKey {
  return {
    prefixlen: LXC_POLICY_STATIC_PREFIX + l4PrefixLen(key.prefixLen, 'policy key'),
    lxcId,
    secLabel: key.identity,
    egress: key.direction === 'egress' ? 1 : 0,
    protocol: key.protocol,
    dport: key.port,
  };
}

/** A `struct lxc_policy_key` as the endpoint id and the engine's key. */
export function fromLxcPolicyKey(k: LxcPolicyKey): EndpointPolicyKey {
  return {
    lxcId: k.lxcId,
    key: {
      direction: k.egress === 1 ? 'egress' : 'ingress',
      identity: k.secLabel,
      protocol: k.protocol,
      port: k.dport,
      prefixLen: l4PrefixLen(k.prefixlen - LXC_POLICY_STATIC_PREFIX, 'policy key'),
    },
  };
}

/** The engine's value as the fields of `struct policy_entry`. */
export function toPolicyEntry(v: PolicyValue): PolicyEntry {
  return {
    proxyPort: v.proxyPort,
    deny: v.deny ? 1 : 0,
    lpmPrefixLength: l4PrefixLen(v.prefixLen, 'policy entry'),
    authType: v.authType,
    hasExplicitAuthType: 0,
    proxyPortPriority: 0,
  };
}

/** A `struct policy_entry` as the engine's value. */
export function fromPolicyEntry(e: PolicyEntry): PolicyValue {
  return {
    deny: e.deny !== 0,
    prefixLen: e.lpmPrefixLength,
    proxyPort: e.proxyPort,
    authType: e.authType,
  };
}

/** `struct lxc_policy_key` typed as the endpoint id and the engine's key (bytes: the generated codec). */
export const policyTrieKey: Codec<EndpointPolicyKey> = mapped(lxcPolicyKey, toLxcPolicyKey, fromLxcPolicyKey);

/** `struct policy_entry` typed as the engine's value (bytes: the generated codec). */
export const policyTrieValue: Codec<PolicyValue> = mapped(policyEntry, toPolicyEntry, fromPolicyEntry);

const bytesAt = (view: DataView, offset: number, size: number) =>
  new Uint8Array(view.buffer, view.byteOffset + offset, size);

/** Cilium's `struct ipcache_key` as canonical prefix text (`10.244.1.5/32`). */
export const ipcacheKey: Codec<string> = {
  size: IPCACHE_KEY_SIZE,
  align: 4,
  encode(prefix, view, offset) {
    // A host's IPv4 address (what a cluster's ipcache is made of) without allocating: the template's bytes
    // with the address in; anything else through @datapath/policy's codec.
    const slash = prefix.length - 3;
    const v4 = prefix.charCodeAt(slash) === 47 && prefix.endsWith('32') ? parseIpv4(prefix, slash) : -1;
    if (v4 < 0) {
      bytesAt(view, offset, IPCACHE_KEY_SIZE).set(encodeIpcacheKey(prefix));
      return;
    }
    bytesAt(view, offset, IPCACHE_KEY_SIZE).set(HOST4_KEY);
    view.setUint32(offset + 8, v4, false);
  },
  decode(view, offset) {
    const b = bytesAt(view, offset, IPCACHE_KEY_SIZE);
    if (
      view.getUint32(offset, true) === HOST4_PREFIXLEN &&
      b[7] === 1 &&
      b[4] === 0 &&
      b[5] === 0 &&
      b[6] === 0
    )
      return `${b[8]}.${b[9]}.${b[10]}.${b[11]}/32`;
    return decodeIpcacheKey(b.slice());
  },
};

/** The key bytes of `0.0.0.0/32`: a host IPv4 key is these with the address at offset 8. */
const HOST4_KEY = encodeIpcacheKey('0.0.0.0/32');
const HOST4_PREFIXLEN = new DataView(HOST4_KEY.buffer).getUint32(0, true);

/**
 * The IPv4 address in `text[0, end)` as a number, or -1 unless it is canonical dotted-quad text (four decimal
 * octets ≤ 255, no leading zeros): everything else takes the full parser.
 */
function parseIpv4(text: string, end: number): number {
  let out = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || dots === 3) return -1;
      out = out * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && octet === 0) return -1;
      octet = octet * 10 + (c - 48);
      if (octet > 255 || ++digits > 3) return -1;
    } else return -1;
  }
  if (digits === 0 || dots !== 3) return -1;
  return out * 256 + octet;
}

/**
 * An ipcache value as the datapath holds it: @datapath/policy's `{ identity, flags }` (the engine's entries),
 * plus the underlay address of the node a remote prefix lives on (the cluster writer's entries, ipcache.ts).
 */
export interface IpcacheEntry extends IpcacheValue {
  /** IPv4 underlay address of the node behind the prefix (the VXLAN remote in tunnel mode); absent = none. */
  tunnelEndpoint?: string;
}

/** Size of `struct remote_endpoint_info`: the policy encoding, the tunnel endpoint, 4 bytes of padding. */
export const IPCACHE_ENTRY_SIZE = IPCACHE_VALUE_SIZE + 8;

/**
 * `struct remote_endpoint_info`: bytes 0–7 are @datapath/policy's ipcache value encoding (identity, flags),
 * bytes 8–11 `tunnel_endpoint` (IPv4, network order, 0 = none), bytes 12–15 zero.
 */
export const ipcacheValue: Codec<IpcacheEntry> = {
  size: IPCACHE_ENTRY_SIZE,
  align: 4,
  encode(value, view, offset) {
    bytesAt(view, offset, IPCACHE_VALUE_SIZE).set(
      encodeIpcacheValue({ identity: value.identity, flags: value.flags }),
    );
    const tep = bytesAt(view, offset + IPCACHE_VALUE_SIZE, 8);
    tep.fill(0);
    const t = value.tunnelEndpoint;
    const v4 = t === undefined ? -1 : parseIpv4(t, t.length);
    if (v4 >= 0) view.setUint32(offset + IPCACHE_VALUE_SIZE, v4, false);
    else if (t !== undefined) {
      const b = tryParseIp(t, 4);
      if (b === undefined)
        throw new AgentError(
          'InvalidArgument',
          `ipcache tunnel endpoint must be an IPv4 address, got ${JSON.stringify(value.tunnelEndpoint)}`,
        );
      tep.set(ipToBytes(b), 0);
    }
  },
  decode(view, offset) {
    const v: IpcacheEntry = decodeIpcacheValue(bytesAt(view, offset, IPCACHE_VALUE_SIZE).slice());
    const tep = bytesAt(view, offset + IPCACHE_VALUE_SIZE, 4);
    if (tep.some((b) => b !== 0)) v.tunnelEndpoint = formatIp(tep.slice());
    return v;
  },
};
