/**
 * The one typed codec of the agent's policy trie and ipcache: what @datapath/policy's `MapChange`s say, as the
 * bytes of bpf/datapath.h. Every policy or ipcache read and write of the agent goes through these codecs.
 *
 * `struct lxc_policy_key` (16 bytes) is Cilium's `struct policy_key` with the endpoint id put in front of it, so
 * that one LPM trie holds every endpoint's policy:
 *
 * | offset | size | field | encoding |
 * |---|---|---|---|
 * | 0 | 4 | `prefixlen` | u32 little-endian = 32 (the endpoint id) + Cilium's prefix length (40 + L4 bits) |
 * | 4 | 4 | `lxc_id` | u32 little-endian: the agent's endpoint id, which is the policy engine's endpoint id |
 * | 8 | 8 | Cilium's key after its `prefixlen` | `sec_label`, `egress:1`, `protocol`, `dport` (see `encodePolicyKey`) |
 */
import type { Codec } from '@datapath/bpf-maps';
import {
  decodeIpcacheKey,
  decodeIpcacheValue,
  decodePolicyKey,
  decodePolicyValue,
  encodeIpcacheKey,
  encodeIpcacheValue,
  encodePolicyKey,
  encodePolicyValue,
  IPCACHE_KEY_SIZE,
  IPCACHE_VALUE_SIZE,
  type IpcacheValue,
  POLICY_KEY_SIZE,
  POLICY_VALUE_SIZE,
  type PolicyKey,
  type PolicyValue,
} from '@datapath/policy';
import { AgentError } from './errors.js';

/** A key of the shared policy trie: which endpoint, and Cilium's policy key. */
export interface LxcPolicyKey {
  /** Endpoint id (the pod's `lxcId`, the engine's `endpointId`). */
  lxcId: number;
  /** Cilium's policy key. */
  key: PolicyKey;
}

/** Bits of the endpoint id in front of Cilium's key. */
const LXC_ID_BITS = 32;

/** Size of `struct lxc_policy_key`. */
export const LXC_POLICY_KEY_SIZE = POLICY_KEY_SIZE + 4;

const bytesAt = (view: DataView, offset: number, size: number) =>
  new Uint8Array(view.buffer, view.byteOffset + offset, size);

/** `struct lxc_policy_key`, typed. */
export const lxcPolicyKey: Codec<LxcPolicyKey> = {
  size: LXC_POLICY_KEY_SIZE,
  align: 4,
  encode({ lxcId, key }, view, offset) {
    if (!Number.isInteger(lxcId) || lxcId < 0 || lxcId > 0xffff_ffff)
      throw new AgentError('InvalidArgument', `policy key: endpoint id ${lxcId} is not a u32`);
    const cilium = encodePolicyKey(key);
    const ciliumView = new DataView(cilium.buffer);
    view.setUint32(offset, LXC_ID_BITS + ciliumView.getUint32(0, true), true);
    view.setUint32(offset + 4, lxcId, true);
    bytesAt(view, offset + 8, POLICY_KEY_SIZE - 4).set(cilium.subarray(4));
  },
  decode(view, offset) {
    const cilium = new Uint8Array(POLICY_KEY_SIZE);
    new DataView(cilium.buffer).setUint32(0, view.getUint32(offset, true) - LXC_ID_BITS, true);
    cilium.set(bytesAt(view, offset + 8, POLICY_KEY_SIZE - 4), 4);
    return { lxcId: view.getUint32(offset + 4, true), key: decodePolicyKey(cilium) };
  },
};

/** Cilium's `struct policy_entry`, typed. */
export const policyEntry: Codec<PolicyValue> = {
  size: POLICY_VALUE_SIZE,
  align: 4,
  encode(value, view, offset) {
    bytesAt(view, offset, POLICY_VALUE_SIZE).set(encodePolicyValue(value));
  },
  decode(view, offset) {
    return decodePolicyValue(bytesAt(view, offset, POLICY_VALUE_SIZE).slice());
  },
};

/** Cilium's `struct ipcache_key` as canonical prefix text (`10.244.1.5/32`). */
export const ipcacheKey: Codec<string> = {
  size: IPCACHE_KEY_SIZE,
  align: 4,
  encode(prefix, view, offset) {
    bytesAt(view, offset, IPCACHE_KEY_SIZE).set(encodeIpcacheKey(prefix));
  },
  decode(view, offset) {
    return decodeIpcacheKey(bytesAt(view, offset, IPCACHE_KEY_SIZE).slice());
  },
};

/** The ipcache value: identity and flags. */
export const ipcacheValue: Codec<IpcacheValue> = {
  size: IPCACHE_VALUE_SIZE,
  align: 4,
  encode(value, view, offset) {
    bytesAt(view, offset, IPCACHE_VALUE_SIZE).set(encodeIpcacheValue(value));
  },
  decode(view, offset) {
    return decodeIpcacheValue(bytesAt(view, offset, IPCACHE_VALUE_SIZE).slice());
  },
};
