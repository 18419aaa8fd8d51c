import { errnoCode } from '@datapath/errors';
import { BpfError } from './errors.js';
import {
  AttachTypeTcx,
  BatchAttr,
  Cmd,
  LinkCreateAttr,
  MapCreateAttr,
  ProgLoadAttr,
} from './sys/bpf-attr.js';
import { syscallError } from './sys/call.js';
import { pinnedAlloc, sysBpf, sysClose } from './sys/libc.js';

/**
 * The answer of a kernel feature probe: `supported`; `unsupported` with the feature's name and the
 * kernel version that introduced it; or `inconclusive` when the probe itself could not run (no
 * privileges, out of memory), with the error.
 */
export type FeatureProbeResult = ProbeSupported | ProbeUnsupported | ProbeInconclusive;

/**
 * @deprecated Use {@link FeatureProbeResult} (renamed so it does not collide with `@datapath/policy`'s
 * scenario `ProbeResult`); this alias goes in the next minor version.
 */
export type ProbeResult = FeatureProbeResult;

/** {@link FeatureProbeResult} when the kernel has the feature. */
export interface ProbeSupported {
  /** Always `supported`. */
  status: 'supported';
  /** What was probed, e.g. `map type lpm_trie`. */
  feature: string;
}

/** {@link FeatureProbeResult} when the kernel lacks the feature. */
export interface ProbeUnsupported {
  /** Always `unsupported`. */
  status: 'unsupported';
  /** What was probed. */
  feature: string;
  /** The first Linux release with the feature, e.g. `6.6`. */
  minKernel: string;
}

/** {@link FeatureProbeResult} when the probe could not decide (no privileges, out of memory, …). */
export interface ProbeInconclusive {
  /** Always `inconclusive`. */
  status: 'inconclusive';
  /** What was probed. */
  feature: string;
  /** Why the probe could not run. */
  error: BpfError;
}

const cache = new Map<string, FeatureProbeResult>();

// What a probe's failure means: a kernel without the feature refuses the unknown type, flag or size with
// EINVAL or E2BIG (besides EOPNOTSUPP/ENOTSUPP, which the table already reads as NotSupported).
const PROBE_MEANING = { EINVAL: 'NotSupported', E2BIG: 'NotSupported' } as const;

function verdict(
  feature: string,
  minKernel: string,
  errno: number,
  cmd: number,
  op: string,
): FeatureProbeResult {
  const error = syscallError(errno, cmd, op, feature, PROBE_MEANING);
  if (error.code === 'NotSupported') return { status: 'unsupported', feature, minKernel };
  return { status: 'inconclusive', feature, error };
}

function cached(feature: string, probe: () => FeatureProbeResult): FeatureProbeResult {
  let r = cache.get(feature);
  if (r === undefined) {
    r = probe();
    cache.set(feature, r);
  }
  return r;
}

/** Kernel map types the probes know, with the release that introduced each. */
const MAP_TYPES: Readonly<Record<number, readonly [string, string, number, number, number]>> = {
  // type: [name, minKernel, keySize, valueSize, flags]
  1: ['hash', '3.19', 4, 4, 0],
  2: ['array', '3.19', 4, 4, 0],
  3: ['prog_array', '4.2', 4, 4, 0],
  4: ['perf_event_array', '4.3', 4, 4, 0],
  5: ['percpu_hash', '4.6', 4, 4, 0],
  6: ['percpu_array', '4.6', 4, 4, 0],
  9: ['lru_hash', '4.10', 4, 4, 0],
  10: ['lru_percpu_hash', '4.10', 4, 4, 0],
  11: ['lpm_trie', '4.11', 8, 4, 1],
  22: ['queue', '4.20', 0, 4, 0],
  23: ['stack', '4.20', 0, 4, 0],
  27: ['ringbuf', '5.8', 0, 0, 0],
};

const createAttr = pinnedAlloc(MapCreateAttr.size);

function createProbeMap(
  type: number,
  keySize: number,
  valueSize: number,
  flags: number,
  max: number,
): number {
  createAttr.bytes.fill(0);
  const v = createAttr.view;
  v.setUint32(MapCreateAttr.mapType, type, true);
  v.setUint32(MapCreateAttr.keySize, keySize, true);
  v.setUint32(MapCreateAttr.valueSize, valueSize, true);
  v.setUint32(MapCreateAttr.maxEntries, max, true);
  v.setUint32(MapCreateAttr.mapFlags, flags, true);
  return sysBpf(Cmd.MapCreate, createAttr, MapCreateAttr.size);
}

/**
 * Probes whether the kernel can create maps of `bpf_map_type` `type` (by creating a tiny one), cached.
 *
 * Equivalent to: `bpftool feature probe kernel` (map types section).
 *
 * @throws {@link BpfError} `InvalidArgument` for a map type the probe does not know.
 * @example Checking for LRU hash maps
 * ```ts
 * import { MapType, probeMapType } from '@datapath/libbpf';
 * if (probeMapType(MapType.LruHash).status !== 'supported') console.log('no LRU maps here');
 * ```
 */
export function probeMapType(type: number): FeatureProbeResult {
  const spec = MAP_TYPES[type];
  if (spec === undefined) {
    throw new BpfError('InvalidArgument', `probeMapType: no probe for map type ${type}`, {
      op: 'probeMapType',
    });
  }
  const [name, minKernel, ks, vs, flags] = spec;
  const feature = `map type ${name}`;
  return cached(feature, () => {
    const fd = createProbeMap(type, ks, vs, flags, type === 27 ? 4096 : 1);
    if (fd >= 0) {
      sysClose(fd);
      return { status: 'supported', feature };
    }
    return verdict(feature, minKernel, -fd, Cmd.MapCreate, 'probeMapType');
  });
}

const batchAttr = pinnedAlloc(BatchAttr.size);
const batchBuf = pinnedAlloc(64);

/**
 * Probes whether `BPF_MAP_LOOKUP_BATCH` works on maps of `type` (on an empty map: `ENOENT` means yes),
 * cached. Map types without it answer ENOTSUPP, kernels before 5.6 EINVAL.
 *
 * @throws {@link BpfError} `InvalidArgument` for a map type the probe does not know.
 * @example Choosing between batch and key-by-key dumps
 * ```ts
 * import { MapType, probeBatchOps } from '@datapath/libbpf';
 * const batch = probeBatchOps(MapType.Hash).status === 'supported';
 * ```
 */
export function probeBatchOps(type: number): FeatureProbeResult {
  const spec = MAP_TYPES[type];
  if (spec === undefined || spec[2] === 0) {
    throw new BpfError('InvalidArgument', `probeBatchOps: no probe for map type ${type}`, {
      op: 'probeBatchOps',
    });
  }
  const [name, , ks, vs, flags] = spec;
  const feature = `batch ops on ${name} maps`;
  return cached(feature, () => {
    const fd = createProbeMap(type, ks, vs, flags, 1);
    if (fd < 0) return verdict(feature, '5.6', -fd, Cmd.MapCreate, 'probeBatchOps');
    try {
      batchAttr.bytes.fill(0);
      const v = batchAttr.view;
      v.setBigUint64(BatchAttr.outBatch, BigInt(batchBuf.addr), true);
      v.setBigUint64(BatchAttr.keys, BigInt(batchBuf.addr + 8), true);
      v.setBigUint64(BatchAttr.values, BigInt(batchBuf.addr + 24), true);
      v.setUint32(BatchAttr.count, 1, true);
      v.setUint32(BatchAttr.mapFd, fd, true);
      const r = sysBpf(Cmd.MapLookupBatch, batchAttr, BatchAttr.size);
      // Array maps are never empty, so they succeed; an empty hash/LPM ends the walk with ENOENT.
      if (r >= 0 || errnoCode(-r) === 'NotFound') return { status: 'supported', feature };
      return verdict(feature, '5.6', -r, Cmd.MapLookupBatch, 'probeBatchOps');
    } finally {
      sysClose(fd);
    }
  });
}

/** Program types the probes know: [name, minKernel, expected attach type]. */
const PROG_TYPES: Readonly<Record<number, readonly [string, string, number]>> = {
  1: ['socket_filter', '3.19', 0],
  3: ['sched_cls', '4.1', 0],
  4: ['sched_act', '4.1', 0],
  6: ['xdp', '4.8', 0],
  8: ['cgroup_skb', '4.10', 0],
  9: ['cgroup_sock', '4.10', 0],
  18: ['cgroup_sock_addr', '4.17', 10],
};

const progAttr = pinnedAlloc(ProgLoadAttr.size);
// r0 = 0; exit
const insns = pinnedAlloc(16);
insns.bytes.set([0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0]);
const license = pinnedAlloc(4);
license.bytes.set([0x47, 0x50, 0x4c, 0]); // "GPL"

function loadProbeProg(type: number, expectedAttachType: number): number {
  progAttr.bytes.fill(0);
  const v = progAttr.view;
  v.setUint32(ProgLoadAttr.progType, type, true);
  v.setUint32(ProgLoadAttr.insnCnt, 2, true);
  v.setBigUint64(ProgLoadAttr.insns, BigInt(insns.addr), true);
  v.setBigUint64(ProgLoadAttr.license, BigInt(license.addr), true);
  v.setUint32(ProgLoadAttr.expectedAttachType, expectedAttachType, true);
  return sysBpf(Cmd.ProgLoad, progAttr, ProgLoadAttr.size);
}

/**
 * Probes whether the kernel loads programs of `bpf_prog_type` `type` (a two-instruction program), cached.
 *
 * Equivalent to: `bpftool feature probe kernel` (program types section).
 *
 * @throws {@link BpfError} `InvalidArgument` for a program type the probe does not know.
 * @example Checking for XDP
 * ```ts
 * import { probeProgType } from '@datapath/libbpf';
 * console.log(probeProgType(6).status); // 'supported'
 * ```
 */
export function probeProgType(type: number): FeatureProbeResult {
  const spec = PROG_TYPES[type];
  if (spec === undefined) {
    throw new BpfError('InvalidArgument', `probeProgType: no probe for program type ${type}`, {
      op: 'probeProgType',
    });
  }
  const [name, minKernel, attach] = spec;
  const feature = `program type ${name}`;
  return cached(feature, () => {
    const fd = loadProbeProg(type, attach);
    if (fd >= 0) {
      sysClose(fd);
      return { status: 'supported', feature };
    }
    return verdict(feature, minKernel, -fd, Cmd.ProgLoad, 'probeProgType');
  });
}

const linkAttr = pinnedAlloc(LinkCreateAttr.size);

/**
 * Probes for tcx links (Linux 6.6): creates a tcx link for a `sched_cls` program on interface index 0,
 * which a tcx-capable kernel refuses with ENODEV and an older one with EINVAL. Nothing is attached.
 *
 * @example Picking tcx or legacy tc
 * ```ts
 * import { probeTcx } from '@datapath/libbpf';
 * const useTcx = probeTcx().status === 'supported';
 * ```
 */
export function probeTcx(): FeatureProbeResult {
  const feature = 'tcx links';
  return cached(feature, () => {
    const prog = loadProbeProg(3, 0);
    if (prog < 0) return verdict(feature, '6.6', -prog, Cmd.ProgLoad, 'probeTcx');
    try {
      linkAttr.bytes.fill(0);
      const v = linkAttr.view;
      v.setUint32(LinkCreateAttr.progFd, prog, true);
      v.setUint32(LinkCreateAttr.targetFd, 0, true);
      v.setUint32(LinkCreateAttr.attachType, AttachTypeTcx.ingress, true);
      const r = sysBpf(Cmd.LinkCreate, linkAttr, LinkCreateAttr.size);
      if (r >= 0) {
        sysClose(r);
        return { status: 'supported', feature };
      }
      // A tcx-capable kernel refuses ifindex 0 (ENODEV: NotFound); an older one the attach type (EINVAL).
      if (errnoCode(-r) === 'NotFound') return { status: 'supported', feature };
      return verdict(feature, '6.6', -r, Cmd.LinkCreate, 'probeTcx');
    } finally {
      sysClose(prog);
    }
  });
}

/**
 * Forgets every cached probe result (after loading a kernel module, or in tests).
 *
 * @example
 * ```ts
 * import { probeReset } from '@datapath/libbpf';
 * probeReset();
 * ```
 */
export function probeReset(): void {
  cache.clear();
}
