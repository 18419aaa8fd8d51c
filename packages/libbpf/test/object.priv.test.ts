import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatapathError } from '@datapath/errors';
import { requireRoot } from '@datapath/testutils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BpfError, objectDescribe, objectLoad, progInfo, VerifierError } from '../src/index.js';

const SOURCE = `
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
enum mode { MODE_A = 1, MODE_B = 2 };
struct pair { __u32 a; __u32 b; };
const volatile __s16 delta = -5;
const volatile __u64 big = 1;
const volatile _Bool enabled = 1;
const volatile char label[8] = "abc";
const volatile enum mode mode = MODE_B;
const volatile struct pair pair = { 1, 2 };
struct { __uint(type, BPF_MAP_TYPE_HASH); __type(key, __u32); __type(value, __u64); __uint(max_entries, 8); } table SEC(".maps");
SEC("xdp") int prog_a(struct xdp_md *ctx) { return enabled && delta < 0 && big && mode == MODE_B && label[0] && pair.b ? XDP_PASS : XDP_DROP; }
SEC("cgroup/connect4") int prog_b(struct bpf_sock_addr *ctx) { return 1; }
char LICENSE[] SEC("license") = "GPL";
`;

let dir: string;
let elf: Uint8Array;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'dp-object-'));
  writeFileSync(join(dir, 'o.c'), SOURCE);
  execFileSync('clang', [
    '-O2',
    '-g',
    '--target=bpf',
    `-I/usr/include/${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu`,
    '-c',
    join(dir, 'o.c'),
    '-o',
    join(dir, 'o.o'),
  ]);
  elf = readFileSync(join(dir, 'o.o'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('objectDescribe', () => {
  it('lists maps, programs and .rodata constants with kinds derived from BTF', () => {
    const d = objectDescribe(elf, 'demo');
    expect(d.maps.find((m) => m.name === 'table')).toMatchObject({
      type: 1,
      keySize: 4,
      valueSize: 8,
      maxEntries: 8,
      internal: false,
      pinByName: false,
    });
    expect(d.maps.find((m) => m.internal)?.name).toBe('demo.rodata');
    expect(d.programs.map((p) => [p.name, p.section, p.typeName, p.expectedAttachType])).toEqual([
      ['prog_a', 'xdp', 'xdp', 37],
      ['prog_b', 'cgroup/connect4', 'cgroup_sock_addr', 10],
    ]);
    const byName = Object.fromEntries(d.constants.map((c) => [c.name, c]));
    expect(byName.delta).toMatchObject({ kind: 'int', signed: true, size: 2 });
    expect(byName.big).toMatchObject({ kind: 'int', signed: false, size: 8 });
    expect(byName.enabled).toMatchObject({ kind: 'bool', size: 1 });
    expect(byName.label).toMatchObject({ kind: 'chars', length: 8, size: 8 });
    expect(byName.mode).toMatchObject({ kind: 'enum', size: 4 });
    expect(byName.pair).toMatchObject({ kind: 'bytes', size: 8 });
    const delta = byName.delta!;
    expect(new DataView(d.rodata.buffer, d.rodata.byteOffset).getInt16(delta.offset, true)).toBe(-5);
  });

  it('rejects bytes that are not a BPF ELF object with InvalidArgument', () => {
    expect(() => objectDescribe(new Uint8Array(10))).toThrow(
      expect.objectContaining({ name: 'BpfError', code: 'InvalidArgument' }),
    );
    const junk = new Uint8Array(4096).fill(7);
    expect(() => objectDescribe(junk)).toThrow(BpfError);
  });
});

describe('objectLoad', () => {
  it('loads with edits (max entries, autoload, .rodata) and hands out program and map fds', (ctx) => {
    requireRoot(ctx);
    const d = objectDescribe(elf);
    const rodata = d.rodata.slice();
    using obj = objectLoad(elf, { maxEntries: { table: 32 }, autoload: { prog_b: false }, rodata });
    expect(obj.programs.map((p) => p.name)).toEqual(['prog_a']);
    expect(progInfo(obj.programs[0]!.fd)).toMatchObject({ typeName: 'xdp', name: 'prog_a' });
    expect(obj.maps.find((m) => m.name === 'table')?.maxEntries).toBe(32);
    expect(() => objectLoad(elf, { maxEntries: { nope: 1 } })).toThrow(
      expect.objectContaining({ code: 'NotFound' }),
    );
  });

  it('throws VerifierError with the verifier log', (ctx) => {
    requireRoot(ctx);
    // Wrong .rodata for the program is fine for the verifier; a rejected program needs a bad access:
    writeFileSync(
      join(dir, 'bad.c'),
      '#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\nSEC("xdp") int bad(struct xdp_md *c) { return *(int *)(long)c->data; }\nchar LICENSE[] SEC("license") = "GPL";\n',
    );
    execFileSync('clang', [
      '-O2',
      '-g',
      '--target=bpf',
      '-I/usr/include/x86_64-linux-gnu',
      '-c',
      join(dir, 'bad.c'),
      '-o',
      join(dir, 'bad.o'),
    ]);
    const err = (() => {
      try {
        objectLoad(readFileSync(join(dir, 'bad.o')));
      } catch (e) {
        return e;
      }
    })() as VerifierError;
    expect(err).toBeInstanceOf(VerifierError);
    expect(err).toBeInstanceOf(DatapathError);
    expect([err.name, err.code, err.reason]).toEqual([
      'VerifierError',
      'InvalidArgument',
      'VerifierRejected',
    ]);
    expect(err.program).toBe('bad');
    expect(err.log).toMatch(/invalid access to packet/);
  });
});
