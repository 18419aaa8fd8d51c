import { formatIp, ipToBytes } from '@datapath/ip';
import type { IpcacheValue, MapChange, PolicyState } from './engine-types.js';
import { PolicyError } from './errors.js';
import type { MapState, PolicyKey, PolicyValue } from './mapstate.js';
import { tryParsePrefix } from './prefix.js';

/** Size in bytes of an encoded policy map key (`struct policy_key`). */
export const POLICY_KEY_SIZE = 12;
/** Size in bytes of an encoded policy map value (`struct policy_entry`). */
export const POLICY_VALUE_SIZE = 8;
/** Size in bytes of an encoded ipcache key (`struct ipcache_key`). */
export const IPCACHE_KEY_SIZE = 24;
/** Size in bytes of an encoded ipcache value (`struct remote_endpoint_info`, simplified). */
export const IPCACHE_VALUE_SIZE = 8;
/** Bits of a policy key that are always significant: sec_label (32) + the direction byte (8). */
export const POLICY_KEY_STATIC_PREFIX = 40;
/** Bits of an ipcache key that are always significant: cluster_id (16) + pad (8) + family (8). */
export const IPCACHE_KEY_STATIC_PREFIX = 32;

function bad(what: string): never {
  throw new PolicyError('InvalidArgument', what);
}

function uint(v: number, max: number, what: string): number {
  if (!Number.isInteger(v) || v < 0 || v > max) bad(`${what} must be an integer in 0..${max}, got ${v}`);
  return v;
}

/**
 * Encodes a policy map key as the 12 bytes of Cilium's LPM `struct policy_key`:
 *
 * | offset | size | field | encoding |
 * |---|---|---|---|
 * | 0 | 4 | `lpm_key.prefixlen` | u32 little-endian (host order) = 40 + `prefixLen` |
 * | 4 | 4 | `sec_label` | u32 little-endian (host order); 0 = any identity |
 * | 8 | 1 | `egress:1, pad:7` | bit 0: 1 = egress, 0 = ingress; bits 1–7 zero |
 * | 9 | 1 | `protocol` | IANA number; 0 = any (only with `prefixLen` 0) |
 * | 10 | 2 | `dport` | u16 big-endian (network order); bits past the prefix zero |
 *
 * @throws {@link PolicyError} `InvalidArgument` for out-of-range fields or a port with bits past its prefix.
 * @example Encoding "ingress from identity 256, TCP port 80"
 * ```ts
 * import { encodePolicyKey } from '@datapath/policy';
 * const bytes = encodePolicyKey({ direction: 'ingress', identity: 256, protocol: 6, port: 80, prefixLen: 24 });
 * // 40 00 00 00  00 01 00 00  00 06 00 50
 * ```
 */
export function encodePolicyKey(key: PolicyKey): Uint8Array {
  const len = uint(key.prefixLen, 24, 'prefixLen');
  const proto = uint(key.protocol, 255, 'protocol');
  const port = uint(key.port, 65535, 'port');
  if (len === 0 && (proto !== 0 || port !== 0)) bad('prefixLen 0 requires protocol 0 and port 0');
  if (len > 0 && len < 8) bad(`prefixLen ${len} would split the protocol byte`);
  if (len <= 8 && port !== 0) bad(`port must be 0 when prefixLen is ${len}`);
  if (len > 8 && len < 24 && (port & ((1 << (24 - len)) - 1)) !== 0)
    bad(`port ${port} has bits set past its prefix /${len}`);
  const out = new Uint8Array(POLICY_KEY_SIZE);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, POLICY_KEY_STATIC_PREFIX + len, true);
  dv.setUint32(4, uint(key.identity, 0xffff_ffff, 'identity'), true);
  out[8] = key.direction === 'egress' ? 1 : 0;
  out[9] = proto;
  dv.setUint16(10, port, false);
  return out;
}

/**
 * Decodes the 12 bytes of a `struct policy_key` (layout in {@link encodePolicyKey}).
 *
 * @throws {@link PolicyError} `InvalidArgument` for a wrong length, a prefix length outside 40..64 or padding bits set.
 * @example Round trip
 * ```ts
 * import { decodePolicyKey, encodePolicyKey } from '@datapath/policy';
 * const k = decodePolicyKey(encodePolicyKey({ direction: 'egress', identity: 0, protocol: 17, port: 0, prefixLen: 8 }));
 * console.log(k.protocol); // 17
 * ```
 */
export function decodePolicyKey(bytes: Uint8Array): PolicyKey {
  if (bytes.length !== POLICY_KEY_SIZE)
    bad(`policy key must be ${POLICY_KEY_SIZE} bytes, got ${bytes.length}`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const full = dv.getUint32(0, true);
  if (full < POLICY_KEY_STATIC_PREFIX || full > POLICY_KEY_STATIC_PREFIX + 24)
    bad(`policy key prefixlen ${full} not in 40..64`);
  if ((bytes[8]! & 0xfe) !== 0) bad('policy key padding bits are set');
  return {
    direction: bytes[8] === 1 ? 'egress' : 'ingress',
    identity: dv.getUint32(4, true),
    protocol: bytes[9]!,
    port: dv.getUint16(10, false),
    prefixLen: full - POLICY_KEY_STATIC_PREFIX,
  };
}

/**
 * Encodes a policy map value as the 8 bytes of `struct policy_entry` (Cilium's current layout, little-endian
 * bitfields):
 *
 * | offset | size | field | encoding |
 * |---|---|---|---|
 * | 0 | 2 | `proxy_port` | u16 big-endian; 0 = no L7 redirect |
 * | 2 | 1 | `deny:1, reserved:2, lpm_prefix_length:5` | bit 0 deny; bits 1–2 zero; bits 3–7 the key's L4 prefix length (0–24) |
 * | 3 | 1 | `auth_type:7, has_explicit_auth_type:1` | bits 0–6 auth type; bit 7 zero |
 * | 4 | 1 | `proxy_port_priority` | 0 |
 * | 5 | 3 | padding | zero |
 *
 * @throws {@link PolicyError} `InvalidArgument` for out-of-range fields.
 * @example Encoding a deny for a whole protocol
 * ```ts
 * import { encodePolicyValue } from '@datapath/policy';
 * const bytes = encodePolicyValue({ deny: true, prefixLen: 8, proxyPort: 0, authType: 0 });
 * // 00 00 41 00 00 00 00 00
 * ```
 */
export function encodePolicyValue(value: PolicyValue): Uint8Array {
  const out = new Uint8Array(POLICY_VALUE_SIZE);
  const dv = new DataView(out.buffer);
  dv.setUint16(0, uint(value.proxyPort, 65535, 'proxyPort'), false);
  out[2] = (value.deny ? 1 : 0) | (uint(value.prefixLen, 24, 'prefixLen') << 3);
  out[3] = uint(value.authType, 127, 'authType');
  return out;
}

/**
 * Decodes the 8 bytes of a `struct policy_entry` (layout in {@link encodePolicyValue}).
 *
 * @throws {@link PolicyError} `InvalidArgument` for a wrong length or a prefix length above 24.
 * @example Round trip
 * ```ts
 * import { decodePolicyValue, encodePolicyValue } from '@datapath/policy';
 * console.log(decodePolicyValue(encodePolicyValue({ deny: false, prefixLen: 24, proxyPort: 0, authType: 0 })).prefixLen); // 24
 * ```
 */
export function decodePolicyValue(bytes: Uint8Array): PolicyValue {
  if (bytes.length !== POLICY_VALUE_SIZE)
    bad(`policy value must be ${POLICY_VALUE_SIZE} bytes, got ${bytes.length}`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const prefixLen = bytes[2]! >> 3;
  if (prefixLen > 24) bad(`policy value lpm_prefix_length ${prefixLen} > 24`);
  return {
    deny: (bytes[2]! & 1) === 1,
    prefixLen,
    proxyPort: dv.getUint16(0, false),
    authType: bytes[3]! & 0x7f,
  };
}

/**
 * Encodes an ipcache key (a prefix such as `10.244.1.5/32` or `fd00::/64`) as the 24 bytes of Cilium's LPM
 * `struct ipcache_key`:
 *
 * | offset | size | field | encoding |
 * |---|---|---|---|
 * | 0 | 4 | `lpm_key.prefixlen` | u32 little-endian = 32 + the IP prefix length |
 * | 4 | 2 | `cluster_id` | u16 little-endian, 0 |
 * | 6 | 1 | `pad1` | 0 |
 * | 7 | 1 | `family` | 1 = IPv4, 2 = IPv6 |
 * | 8 | 16 | `ip4` / `ip6` | address in network order; IPv4 uses bytes 8–11, the rest zero; host bits zero |
 *
 * @throws {@link PolicyError} `InvalidArgument` when `prefix` is not an IP prefix.
 * @example Encoding a pod address
 * ```ts
 * import { encodeIpcacheKey } from '@datapath/policy';
 * const bytes = encodeIpcacheKey('10.244.1.5/32');
 * // 40 00 00 00  00 00 00 01  0a f4 01 05  00 00 00 00  00 00 00 00  00 00 00 00
 * ```
 */
export function encodeIpcacheKey(prefix: string): Uint8Array {
  const p = tryParsePrefix(prefix);
  if (p === undefined) bad(`not an IP prefix: ${JSON.stringify(prefix)}`);
  const out = new Uint8Array(IPCACHE_KEY_SIZE);
  new DataView(out.buffer).setUint32(0, IPCACHE_KEY_STATIC_PREFIX + p.length, true);
  out[7] = p.family === 4 ? 1 : 2;
  out.set(ipToBytes(p), 8);
  return out;
}

/**
 * Decodes the 24 bytes of a `struct ipcache_key` back to canonical prefix text (layout in {@link encodeIpcacheKey}).
 *
 * @throws {@link PolicyError} `InvalidArgument` for a wrong length, family or prefix length.
 * @example Round trip
 * ```ts
 * import { decodeIpcacheKey, encodeIpcacheKey } from '@datapath/policy';
 * console.log(decodeIpcacheKey(encodeIpcacheKey('fd00::1/128'))); // 'fd00::1/128'
 * ```
 */
export function decodeIpcacheKey(bytes: Uint8Array): string {
  if (bytes.length !== IPCACHE_KEY_SIZE)
    bad(`ipcache key must be ${IPCACHE_KEY_SIZE} bytes, got ${bytes.length}`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const family =
    bytes[7] === 1 ? 4 : bytes[7] === 2 ? 6 : bad(`ipcache key family ${bytes[7]} is not 1 or 2`);
  const len = dv.getUint32(0, true) - IPCACHE_KEY_STATIC_PREFIX;
  if (len < 0 || len > (family === 4 ? 32 : 128)) bad(`ipcache key prefix length ${len} out of range`);
  return `${formatIp(bytes.subarray(8, family === 4 ? 12 : 24))}/${len}`;
}

/**
 * Encodes an ipcache value as 8 bytes: `sec_identity` u32 little-endian, then `flags` u32 little-endian
 * (bit 0 local endpoint, bit 1 host).
 *
 * @throws {@link PolicyError} `InvalidArgument` for out-of-range fields.
 * @example Encoding a pod's identity
 * ```ts
 * import { encodeIpcacheValue } from '@datapath/policy';
 * const bytes = encodeIpcacheValue({ identity: 256, flags: 1 });
 * // 00 01 00 00  01 00 00 00
 * ```
 */
export function encodeIpcacheValue(value: IpcacheValue): Uint8Array {
  const out = new Uint8Array(IPCACHE_VALUE_SIZE);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, uint(value.identity, 0xffff_ffff, 'identity'), true);
  dv.setUint32(4, uint(value.flags, 0xffff_ffff, 'flags'), true);
  return out;
}

/**
 * Decodes the 8 bytes of an ipcache value (layout in {@link encodeIpcacheValue}).
 *
 * @throws {@link PolicyError} `InvalidArgument` for a wrong length.
 * @example Round trip
 * ```ts
 * import { decodeIpcacheValue, encodeIpcacheValue } from '@datapath/policy';
 * console.log(decodeIpcacheValue(encodeIpcacheValue({ identity: 2, flags: 0 })).identity); // 2
 * ```
 */
export function decodeIpcacheValue(bytes: Uint8Array): IpcacheValue {
  if (bytes.length !== IPCACHE_VALUE_SIZE)
    bad(`ipcache value must be ${IPCACHE_VALUE_SIZE} bytes, got ${bytes.length}`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { identity: dv.getUint32(0, true), flags: dv.getUint32(4, true) };
}

/** One encoded map entry, ready for `bpf_map_update_elem`. */
export interface EncodedEntry {
  /** The encoded key. */
  key: Uint8Array;
  /** The encoded value. */
  value: Uint8Array;
}

/**
 * Encodes every entry of one endpoint's policy map, in key order.
 *
 * Equivalent to what `cilium-dbg bpf policy get <endpoint>` would show, as raw bytes.
 *
 * @example Encoding an endpoint's map
 * ```ts
 * import { PolicyEngine, encodePolicyMap } from '@datapath/policy';
 * const engine = new PolicyEngine();
 * engine.load({ namespaces: { x: {} }, pods: [{ namespace: 'x', name: 'a', ip: '10.244.0.10' }] });
 * const entries = encodePolicyMap(engine.state().endpoints.get('x/a')!.policy);
 * console.log(entries.length); // 2 (allow-all in each direction)
 * ```
 */
export function encodePolicyMap(map: MapState): EncodedEntry[] {
  return [...map.values()].map((e) => ({ key: encodePolicyKey(e.key), value: encodePolicyValue(e.value) }));
}

/**
 * Encodes every ipcache entry of a compiled state.
 *
 * @example Encoding the ipcache
 * ```ts
 * import { PolicyEngine, encodeIpcache } from '@datapath/policy';
 * const engine = new PolicyEngine();
 * console.log(encodeIpcache(engine.state()).length); // 2 (0.0.0.0/0 and ::/0 → world)
 * ```
 */
export function encodeIpcache(state: PolicyState): EncodedEntry[] {
  return [...state.ipcache].map(([prefix, v]) => ({
    key: encodeIpcacheKey(prefix),
    value: encodeIpcacheValue(v),
  }));
}

/** A {@link MapChange} with its key and value encoded; `endpointId` is set for policy map changes. */
export interface EncodedChange {
  /** Which map: the endpoint's policy map or the ipcache. */
  map: 'policy' | 'ipcache';
  /** Update (insert or overwrite) or delete. */
  op: 'update' | 'delete';
  /** The endpoint whose policy map changes (`cilium_policy_v2_<endpointId>`). */
  endpointId?: number;
  /** The encoded key. */
  key: Uint8Array;
  /** The encoded value (updates only). */
  value?: Uint8Array;
}

/**
 * Encodes a list of {@link MapChange}s so an agent can apply them with one batch of map updates and deletes.
 *
 * @example Encoding the changes of a policy update
 * ```ts
 * import { PolicyEngine, encodeChanges } from '@datapath/policy';
 * const engine = new PolicyEngine();
 * const changes = encodeChanges(engine.load({ namespaces: { x: {} }, pods: [{ namespace: 'x', name: 'a', ip: '10.244.0.10' }] }));
 * console.log(changes.filter((c) => c.map === 'policy').length); // 2
 * ```
 */
export function encodeChanges(changes: readonly MapChange[]): EncodedChange[] {
  return changes.map((c): EncodedChange => {
    if (c.map === 'policy')
      return c.op === 'update' && c.value
        ? {
            map: 'policy',
            op: 'update',
            endpointId: c.endpointId,
            key: encodePolicyKey(c.key),
            value: encodePolicyValue(c.value),
          }
        : { map: 'policy', op: 'delete', endpointId: c.endpointId, key: encodePolicyKey(c.key) };
    return c.op === 'update' && c.value
      ? { map: 'ipcache', op: 'update', key: encodeIpcacheKey(c.prefix), value: encodeIpcacheValue(c.value) }
      : { map: 'ipcache', op: 'delete', key: encodeIpcacheKey(c.prefix) };
  });
}
