import { closeSync, existsSync, mkdirSync, openSync, rmdirSync, rmSync, statSync } from 'node:fs';
import { bpftoolJson, requireRoot, uniqueName } from '@datapath/testutils';
import { describe, expect, it } from 'vitest';
import {
  BpfCmd,
  BpfError,
  bpfSyscall,
  fdClose,
  MapFlags,
  MapIo,
  MapType,
  mapCreate,
  mapFdById,
  mapInfo,
  objGet,
  objInfo,
  objPin,
  possibleCpus,
} from '../src/index.js';

function caught(fn: () => unknown): BpfError {
  try {
    fn();
  } catch (e) {
    if (e instanceof BpfError) return e;
    throw e;
  }
  throw new Error('expected a BpfError');
}

describe('object calls', () => {
  it('mapInfo / objInfo describe a map as bpftool does', (ctx) => {
    requireRoot(ctx);
    const name = uniqueName();
    const fd = mapCreate({
      type: MapType.LpmTrie,
      keySize: 8,
      valueSize: 4,
      maxEntries: 32,
      flags: MapFlags.NoPrealloc,
      name,
    });
    try {
      const info = mapInfo(fd);
      const show = bpftoolJson<{
        id: number;
        type: string;
        bytes_key: number;
        bytes_value: number;
        max_entries: number;
        flags: number;
        name: string;
      }>(['map', 'show', 'id', String(info.id)]);
      expect(info).toMatchObject({
        kind: 'map',
        type: MapType.LpmTrie,
        keySize: 8,
        valueSize: 4,
        maxEntries: 32,
        flags: 1,
        name,
      });
      expect(show).toMatchObject({
        id: info.id,
        type: 'lpm_trie',
        bytes_key: 8,
        bytes_value: 4,
        max_entries: 32,
        flags: 1,
        name,
      });
      expect(objInfo(fd)).toEqual(info);
      const again = mapFdById(info.id);
      expect(mapInfo(again).id).toBe(info.id);
      fdClose(again);
    } finally {
      fdClose(fd);
    }
    expect(caught(() => mapInfo(-1)).code).toBe('BadFd');
    expect(caught(() => objInfo(0)).code).toBe('InvalidArgument'); // stdin is no BPF object
    expect(caught(() => fdClose(-1)).code).toBe('BadFd');
  });

  it('pins, reopens read-only, and refuses a taken path', (ctx) => {
    requireRoot(ctx);
    const path = `/sys/fs/bpf/${uniqueName()}`;
    const fd = mapCreate({ type: MapType.Hash, keySize: 4, valueSize: 4, maxEntries: 4 });
    try {
      objPin(fd, path);
      expect(caught(() => objPin(fd, path))).toMatchObject({
        code: 'AlreadyExists',
        errno: 17,
        target: path,
      });
      const ro = objGet(path, { readOnly: true });
      try {
        expect(mapInfo(ro).id).toBe(mapInfo(fd).id);
        const io = new MapIo({ fd: ro, keySize: 4, valueSize: 4 });
        expect(caught(() => io.update(0))).toMatchObject({ code: 'PermissionDenied' });
        expect(io.lookup()).toBe(false);
      } finally {
        fdClose(ro);
      }
      expect(caught(() => objGet(`${path}missing`)).code).toBe('NotFound');
      // bpffs reserves names with dots: EPERM.
      expect(caught(() => objGet(`${path}.x`)).code).toBe('PermissionDenied');
      expect(caught(() => objGet('')).code).toBe('InvalidArgument');
    } finally {
      fdClose(fd);
      rmSync(path, { force: true });
    }
    expect(existsSync(path)).toBe(false);
  });

  it('MapIo: element ops, next-key walk and batches through the scratch buffers', (ctx) => {
    requireRoot(ctx);
    const fd = mapCreate({ type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 1000 });
    try {
      const io = new MapIo({ fd, keySize: 4, valueSize: 8 });
      io.ensureBatch(300);
      const kv = new DataView(io.batchKeys.buffer, io.batchKeys.byteOffset);
      const vv = new DataView(io.batchValues.buffer, io.batchValues.byteOffset);
      for (let i = 0; i < 300; i++) {
        kv.setUint32(i * 4, i, true);
        vv.setBigUint64(i * 8, BigInt(i) * 10n, true);
      }
      io.updateBatch(300);
      io.keyView.setUint32(0, 299, true);
      expect(io.lookup()).toBe(true);
      expect(io.valueView.getBigUint64(0, true)).toBe(2990n);
      expect(io.delete()).toBe(true);
      expect(io.delete()).toBe(false);
      expect(io.lookupAndDelete()).toBe(false);
      io.keyView.setUint32(0, 5, true);
      expect(io.lookupAndDelete()).toBe(true);
      expect(io.valueView.getBigUint64(0, true)).toBe(50n);
      // Walk the keys.
      const keys = new Set<number>();
      for (let more = io.nextKey(true); more; more = io.nextKey(false)) {
        keys.add(io.nextView.getUint32(0, true));
        io.key.set(io.next);
      }
      expect(keys.size).toBe(298);
      // Dump with small batches: every element exactly once.
      const seen = new Map<number, bigint>();
      let n = io.lookupBatch(true, false, 64);
      for (;;) {
        for (let i = 0; i < n; i++) seen.set(kv.getUint32(i * 4, true), vv.getBigUint64(i * 8, true));
        if (io.batchDone) break;
        n = io.lookupBatch(false, false, 64);
      }
      expect(seen.size).toBe(298);
      expect(seen.get(7)).toBe(70n);
      expect(caught(() => io.updateBatch(301)).code).toBe('InvalidArgument');
      expect(caught(() => new MapIo({ fd, keySize: 0, valueSize: 8 })).code).toBe('InvalidArgument');
    } finally {
      fdClose(fd);
    }
  });

  it('MapIo sizes per-CPU values by possible CPUs', (ctx) => {
    requireRoot(ctx);
    const fd = mapCreate({ type: MapType.PerCpuArray, keySize: 4, valueSize: 4, maxEntries: 1 });
    try {
      const io = new MapIo({ fd, keySize: 4, valueSize: 4, perCpu: true });
      expect(io.cpus).toBe(possibleCpus());
      expect(io.cpuStride).toBe(8);
      expect(io.value.byteLength).toBe(8 * possibleCpus());
      for (let c = 0; c < io.cpus; c++) io.valueView.setUint32(c * 8, 100 + c, true);
      io.update(0);
      io.value.fill(0);
      expect(io.lookup()).toBe(true);
      for (let c = 0; c < io.cpus; c++) expect(io.valueView.getUint32(c * 8, true)).toBe(100 + c);
    } finally {
      fdClose(fd);
    }
  });

  it('objInfo describes a program and a cgroup link made with raw commands', (ctx) => {
    requireRoot(ctx);
    const cgroup = `/sys/fs/cgroup/unified/${uniqueName()}`;
    if (!existsSync('/sys/fs/cgroup/unified')) ctx.skip('needs cgroup2 at /sys/fs/cgroup/unified');
    mkdirSync(cgroup);
    let cgFd = -1;
    let progFd = -1;
    let linkFd = -1;
    try {
      cgFd = openSync(cgroup, 'r');
      // BPF_PROG_LOAD of a cgroup_skb program: r0 = 1 (allow); exit.
      const insns = Uint8Array.from([0xb7, 0, 0, 0, 1, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0]);
      const license = Uint8Array.from([0x47, 0x50, 0x4c, 0]);
      const load = new Uint8Array(128);
      const lv = new DataView(load.buffer);
      lv.setUint32(0, 8, true); // BPF_PROG_TYPE_CGROUP_SKB
      lv.setUint32(4, 2, true);
      progFd = bpfSyscall(BpfCmd.ProgLoad, load, {
        op: 'test',
        pointers: [
          { offset: 8, buffer: insns },
          { offset: 16, buffer: license },
        ],
      });
      const prog = objInfo(progFd);
      expect(prog).toMatchObject({ kind: 'prog', type: 8, gplCompatible: true });
      const link = new Uint8Array(64);
      const kv = new DataView(link.buffer);
      kv.setUint32(0, progFd, true);
      kv.setUint32(4, cgFd, true);
      kv.setUint32(8, 0, true); // BPF_CGROUP_INET_INGRESS
      linkFd = bpfSyscall(BpfCmd.LinkCreate, link, { op: 'test' });
      const info = objInfo(linkFd);
      expect(info).toMatchObject({
        kind: 'link',
        type: 3,
        progId: prog.id,
        attachType: 0,
        ifindex: undefined,
      });
      expect(info.kind === 'link' && info.cgroupId).toBe(statSync(cgroup, { bigint: true }).ino);
      const shown = bpftoolJson<{ id: number; prog_id: number }>(['link', 'show', 'id', String(info.id)]);
      expect(shown).toMatchObject({ id: info.id, prog_id: prog.id });
    } finally {
      if (linkFd >= 0) fdClose(linkFd); // an unpinned link detaches when its last fd closes
      if (progFd >= 0) fdClose(progFd);
      if (cgFd >= 0) closeSync(cgFd);
      rmdirSync(cgroup);
    }
  });

  it('bpfSyscall runs a raw command with buffer pointers and returns kernel writes', (ctx) => {
    requireRoot(ctx);
    const fd = mapCreate({ type: MapType.Array, keySize: 4, valueSize: 8, maxEntries: 2 });
    try {
      const key = Uint8Array.from([1, 0, 0, 0]);
      const value = new Uint8Array(8);
      const attr = new Uint8Array(32);
      new DataView(attr.buffer).setUint32(0, fd, true);
      value.set([9, 9, 9, 9, 9, 9, 9, 9]);
      bpfSyscall(BpfCmd.MapUpdateElem, attr, {
        op: 'raw',
        pointers: [
          { offset: 8, buffer: key },
          { offset: 16, buffer: value },
        ],
      });
      value.fill(0);
      bpfSyscall(BpfCmd.MapLookupElem, attr, {
        op: 'raw',
        pointers: [
          { offset: 8, buffer: key },
          { offset: 16, buffer: value },
        ],
      });
      expect([...value]).toEqual([9, 9, 9, 9, 9, 9, 9, 9]);
      key[0] = 5;
      expect(
        caught(() =>
          bpfSyscall(BpfCmd.MapLookupElem, attr, {
            op: 'raw',
            pointers: [
              { offset: 8, buffer: key },
              { offset: 16, buffer: value },
            ],
          }),
        ),
      ).toMatchObject({ code: 'NotFound', syscall: 'bpf(BPF_MAP_LOOKUP_ELEM)' });
      expect(
        caught(() => bpfSyscall(1, attr, { op: 'raw', pointers: [{ offset: 30, buffer: key }] })).code,
      ).toBe('InvalidArgument');
      expect(caught(() => bpfSyscall(1, new Uint8Array(300), { op: 'raw' })).code).toBe('InvalidArgument');
    } finally {
      fdClose(fd);
    }
  });
});
