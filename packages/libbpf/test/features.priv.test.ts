import { release } from 'node:os';
import { requireRoot } from '@datapath/testutils';
import { describe, expect, it } from 'vitest';
import {
  BpfError,
  MapType,
  probeBatchOps,
  probeMapType,
  probeProgType,
  probeReset,
  probeTcx,
} from '../src/index.js';

// The test machine runs Linux ≥ 6.6: every probed feature exists there, so "unsupported" is a failure
// (a skip would hide a broken probe).
function kernelAtLeast(major: number, minor: number): boolean {
  const [a, b] = release().split('.').map(Number);
  return a! > major || (a === major && b! >= minor);
}

describe('kernel feature probes', () => {
  it('reports the map types, batch ops, program types and tcx this kernel has', (ctx) => {
    requireRoot(ctx);
    probeReset();
    for (const t of [
      MapType.Hash,
      MapType.Array,
      MapType.LpmTrie,
      MapType.PerCpuHash,
      MapType.LruHash,
      MapType.RingBuf,
    ]) {
      expect(probeMapType(t)).toMatchObject({ status: 'supported' });
    }
    expect(probeBatchOps(MapType.Hash)).toMatchObject({
      status: 'supported',
      feature: 'batch ops on hash maps',
    });
    expect(probeBatchOps(MapType.Array)).toMatchObject({ status: 'supported' });
    // prog arrays have no batch ops at all: ENOTSUPP.
    expect(probeBatchOps(MapType.ProgArray)).toEqual({
      status: 'unsupported',
      feature: 'batch ops on prog_array maps',
      minKernel: '5.6',
    });
    for (const t of [1, 3, 6, 18]) expect(probeProgType(t)).toMatchObject({ status: 'supported' });
    if (!kernelAtLeast(6, 6)) ctx.skip('tcx needs Linux 6.6');
    expect(probeTcx()).toEqual({ status: 'supported', feature: 'tcx links' });
  });

  it('caches results and rejects unknown types before any syscall', (ctx) => {
    requireRoot(ctx);
    const a = probeMapType(MapType.Hash);
    expect(probeMapType(MapType.Hash)).toBe(a);
    expect(() => probeMapType(9999)).toThrow(BpfError);
    expect(() => probeProgType(9999)).toThrow(expect.objectContaining({ code: 'InvalidArgument' }));
  });
});
