import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatapathError, isErrorCode } from '@datapath/errors';
import { describe, expect, it } from 'vitest';
import { MAP_UPDATE_MEANING } from '../src/errors.js';
import { BpfError, errnoError } from '../src/index.js';
import { parseCpuList } from '../src/map/cpus.js';
import {
  BatchAttr,
  CMD_NAMES,
  Cmd,
  ElemAttr,
  InfoAttr,
  LinkInfoLayout,
  MapCreateAttr,
  MapInfoLayout,
  ObjAttr,
  ProgInfoLayout,
  ProgLoadAttr,
} from '../src/sys/bpf-attr.js';

describe('errnoError', () => {
  it('maps each errno to its code and keeps op, syscall, target', () => {
    const cases: [number, string][] = [
      [1, 'PermissionDenied'],
      [2, 'NotFound'],
      [7, 'TooBig'],
      [9, 'BadFd'],
      [13, 'PermissionDenied'],
      [16, 'Busy'],
      [17, 'AlreadyExists'],
      [19, 'NotFound'],
      [22, 'InvalidArgument'],
      [11, 'TryAgain'],
      [24, 'Exhausted'],
      [28, 'Exhausted'],
      [95, 'NotSupported'],
      [116, 'Stale'],
      [524, 'NotSupported'],
      [9999, 'Unknown'],
    ];
    for (const [errno, code] of cases) {
      const e = errnoError(errno, { op: 'x', syscall: 'bpf(BPF_X)', target: 't' });
      expect(e).toBeInstanceOf(BpfError);
      expect(e).toBeInstanceOf(DatapathError);
      expect(isErrorCode(e.code)).toBe(true);
      expect(e).toMatchObject({ name: 'BpfError', code, errno, op: 'x', syscall: 'bpf(BPF_X)', target: 't' });
    }
    expect(errnoError(2, { op: 'mapLookup' }).message).toBe('mapLookup: mapLookup failed: ENOENT');
    expect(errnoError(9999, { op: 'o' }).message).toContain('errno 9999');
  });

  it('E2BIG means the map is full only where the caller says so, whatever the op is called', () => {
    const full = errnoError(7, { op: 'mapUpdate', meaning: MAP_UPDATE_MEANING });
    expect([full.code, full.reason, full.errnoName]).toEqual(['Exhausted', 'Full', 'E2BIG']);
    expect(errnoError(7, { op: 'mapUpdate' }).code).toBe('TooBig');
    expect(errnoError(7, { op: 'mapCreate' }).code).toBe('TooBig');
  });

  it('names the capability a denied call needs', () => {
    expect(errnoError(1, { op: 'mapCreate', syscall: 'bpf(BPF_MAP_CREATE)' }).message).toBe(
      'mapCreate: bpf(BPF_MAP_CREATE) failed: EPERM (needs CAP_BPF, with CAP_NET_ADMIN for networking programs, or root)',
    );
    expect(errnoError(1, { op: 'inNetns', syscall: 'setns', privilege: 'CAP_SYS_ADMIN' }).message).toContain(
      'EPERM (needs CAP_SYS_ADMIN)',
    );
    expect(errnoError(2, { op: 'mapLookup' }).message).not.toContain('needs');
  });

  it('preserves the cause', () => {
    const cause = new Error('inner');
    expect(errnoError(1, { op: 'o', cause }).cause).toBe(cause);
  });
});

describe('possible CPU list parsing', () => {
  it('counts ranges and singles', () => {
    expect(parseCpuList('0\n')).toBe(1);
    expect(parseCpuList('0-1\n')).toBe(2);
    expect(parseCpuList('0-3,8-11,16')).toBe(9);
    expect(() => parseCpuList('zero')).toThrow(expect.objectContaining({ code: 'InvalidArgument' }));
  });
});

describe('bpf(2) attr layouts', () => {
  it('command names read like the kernel enum', () => {
    expect(CMD_NAMES[Cmd.MapLookupAndDeleteBatch]).toBe('bpf(BPF_MAP_LOOKUP_AND_DELETE_BATCH)');
    expect(CMD_NAMES[Cmd.ObjGetInfoByFd]).toBe('bpf(BPF_OBJ_GET_INFO_BY_FD)');
  });

  // The offsets are checked against the system's UAPI header with offsetof(), when a C compiler exists.
  let cc = true;
  try {
    execFileSync('cc', ['--version'], { stdio: 'ignore' });
  } catch {
    cc = false;
  }
  it.skipIf(!cc)('match offsetof() in linux/bpf.h', () => {
    const checks: [string, number][] = [
      ['offsetof(union bpf_attr, map_type)', MapCreateAttr.mapType],
      ['offsetof(union bpf_attr, max_entries)', MapCreateAttr.maxEntries],
      ['offsetof(union bpf_attr, map_flags)', MapCreateAttr.mapFlags],
      ['offsetof(union bpf_attr, inner_map_fd)', MapCreateAttr.innerMapFd],
      ['offsetof(union bpf_attr, map_name)', MapCreateAttr.mapName],
      ['offsetof(union bpf_attr, map_extra)', MapCreateAttr.mapExtra],
      ['offsetof(union bpf_attr, key)', ElemAttr.key],
      ['offsetof(union bpf_attr, value)', ElemAttr.value],
      ['offsetof(union bpf_attr, next_key)', ElemAttr.value],
      ['offsetof(union bpf_attr, flags)', ElemAttr.flags],
      ['offsetof(union bpf_attr, batch.out_batch)', BatchAttr.outBatch],
      ['offsetof(union bpf_attr, batch.keys)', BatchAttr.keys],
      ['offsetof(union bpf_attr, batch.values)', BatchAttr.values],
      ['offsetof(union bpf_attr, batch.count)', BatchAttr.count],
      ['offsetof(union bpf_attr, batch.map_fd)', BatchAttr.mapFd],
      ['offsetof(union bpf_attr, batch.elem_flags)', BatchAttr.elemFlags],
      ['offsetof(union bpf_attr, batch.flags)', BatchAttr.flags],
      ['offsetof(union bpf_attr, bpf_fd)', ObjAttr.bpfFd],
      ['offsetof(union bpf_attr, file_flags)', ObjAttr.fileFlags],
      ['offsetof(union bpf_attr, info.info_len)', InfoAttr.infoLen],
      ['offsetof(union bpf_attr, info.info)', InfoAttr.info],
      ['offsetof(union bpf_attr, insns)', ProgLoadAttr.insns],
      ['offsetof(union bpf_attr, license)', ProgLoadAttr.license],
      ['offsetof(union bpf_attr, expected_attach_type)', ProgLoadAttr.expectedAttachType],
      ['offsetof(struct bpf_map_info, name)', MapInfoLayout.name],
      ['offsetof(struct bpf_map_info, btf_id)', MapInfoLayout.btfId],
      ['offsetof(struct bpf_map_info, map_extra)', MapInfoLayout.mapExtra],
      ['sizeof(struct bpf_map_info)', MapInfoLayout.size],
      ['offsetof(struct bpf_prog_info, name)', ProgInfoLayout.name],
      ['offsetof(struct bpf_prog_info, btf_id)', ProgInfoLayout.btfId],
      ['offsetof(struct bpf_prog_info, run_cnt)', ProgInfoLayout.runCnt],
      ['offsetof(struct bpf_prog_info, verified_insns)', ProgInfoLayout.verifiedInsns],
      ['sizeof(struct bpf_prog_info)', ProgInfoLayout.size],
      ['offsetof(struct bpf_link_info, prog_id)', LinkInfoLayout.progId],
      ['offsetof(struct bpf_link_info, xdp.ifindex)', LinkInfoLayout.union],
    ];
    const dir = mkdtempSync(join(tmpdir(), 'dpt-layout-'));
    try {
      const src = join(dir, 'l.c');
      writeFileSync(
        src,
        `#include <stdio.h>\n#include <stddef.h>\n#include <linux/bpf.h>\nint main(void){\n${checks
          .map(([expr]) => `printf("%zu\\n", (size_t)${expr});`)
          .join('\n')}\nreturn 0;}\n`,
      );
      execFileSync('cc', ['-o', join(dir, 'l'), src]);
      const got = execFileSync(join(dir, 'l'), { encoding: 'utf8' }).trim().split('\n').map(Number);
      expect(Object.fromEntries(checks.map(([e], i) => [e, got[i]]))).toEqual(Object.fromEntries(checks));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
