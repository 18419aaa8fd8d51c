// Internal records the engine's parts share: a pod as compiled, a group of endpoints with one map, the change sink.
import type { IpAddress } from '@datapath/ip';
import type { MapChange, PodSpec } from './engine-types.js';
import type { NamedPort } from './identity.js';
import type { MapEntry } from './mapstate.js';
import type { NormalizedRule } from './rules.js';

/** Where internal code records map changes (an array, or a sink that drops them). */
export interface ChangeSink {
  push(change: MapChange): unknown;
}

/** A sink that drops every change (a load that writes maps whole). */
export const DISCARD: ChangeSink = { push: () => 0 };

/** A named container port with its protocol number. */
export interface NamedPortEntry extends NamedPort {
  name?: string | undefined;
}

/** A pod as the engine holds it: the spec, its parsed IP, base labels, identity and group. */
export interface PodRec {
  key: string;
  spec: PodSpec;
  ip: IpAddress;
  cidr: string;
  ports: NamedPortEntry[];
  portsSig: string;
  endpointId: number;
  baseKey: string;
  baseLabels: string[];
  k8s: Map<string, string>;
  identityKey?: string;
  identity: number;
  group?: Group | undefined;
}

/** Endpoints sharing one identity and one set of named ports: they share one policy map. */
export interface Group {
  key: string;
  identity: number;
  ns: string;
  ports: NamedPortEntry[];
  pods: Set<PodRec>;
  rules: Set<NormalizedRule>;
  state: Map<string, MapEntry>;
}

/** The value under `key`, created with `make` on first use. */
export function bucket<K, V>(map: Map<K, V>, key: K, make: () => V): V {
  let v = map.get(key);
  if (v === undefined) {
    v = make();
    map.set(key, v);
  }
  return v;
}
