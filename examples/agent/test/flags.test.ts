/**
 * The flag bits and prefix lengths the agent uses in TypeScript are C enums in bpf/datapath.h that reach
 * datapath.gen.ts through the object's BTF: checked here against bpftool's own reading of that BTF (the
 * oracle), and the header must not define them a second time as preprocessor constants.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { CtFlags, DpFlags, IpcacheFlags, LxcPolicyPrefix } from '../src/datapath.gen.js';
import { generateDatapathModule } from '../src/layout.js';
import { policyTrieKey } from '../src/policy-map.js';

const header = readFileSync(new URL('../bpf/datapath.h', import.meta.url), 'utf8');

/** `enum NAME`'s enumerators as bpftool prints them from the object's BTF. */
function btfEnum(object: string, name: string): Record<string, number> {
  const text = execFileSync('bpftool', ['btf', 'dump', 'file', object, 'format', 'raw'], {
    encoding: 'utf8',
  });
  const lines = text.split('\n');
  const at = lines.findIndex((l) => new RegExp(`^\\[\\d+\\] ENUM '${name}' `).test(l));
  if (at < 0) throw new Error(`the object's BTF has no enum ${name}`);
  const out: Record<string, number> = {};
  for (const l of lines.slice(at + 1)) {
    const m = /^\t'(\w+)' val=(-?\d+)/.exec(l);
    if (m === null) break;
    out[m[1]!] = Number(m[2]);
  }
  return out;
}

let object: string;
beforeAll(async () => {
  object = (await generateDatapathModule()).object;
});

describe('flag enums shared with bpf/datapath.h', () => {
  it('are the enumerators of the BTF (bpftool), with the values the datapath tests rely on', () => {
    expect(CtFlags).toEqual(btfEnum(object, 'ct_flags'));
    expect(DpFlags).toEqual(btfEnum(object, 'dp_flags'));
    expect(IpcacheFlags).toEqual(btfEnum(object, 'ipcache_flags'));
    expect(LxcPolicyPrefix).toEqual(btfEnum(object, 'lxc_policy_prefix'));
    // Bits, not counters: every flag one distinct bit.
    const bits = [...Object.values(CtFlags), ...Object.values(DpFlags), ...Object.values(IpcacheFlags)];
    for (const b of bits) expect(b & (b - 1)).toBe(0);
  });

  it('are not defined a second time as preprocessor constants', () => {
    for (const name of [
      ...Object.keys(CtFlags),
      ...Object.keys(DpFlags),
      ...Object.keys(IpcacheFlags),
      ...Object.keys(LxcPolicyPrefix),
    ])
      expect(header).not.toMatch(new RegExp(`^#define ${name}\\b`, 'm'));
  });

  it('give the policy trie key its prefix: the static bits plus the protocol/port prefix', () => {
    const b = new Uint8Array(policyTrieKey.size);
    const v = new DataView(b.buffer);
    const key = { direction: 'egress', identity: 5, protocol: 17, port: 0, prefixLen: 8 } as const;
    policyTrieKey.encode({ lxcId: 3, key }, v, 0);
    expect(v.getUint32(0, true)).toBe(LxcPolicyPrefix.LXC_POLICY_STATIC_PREFIX + 8);
    expect(policyTrieKey.decode(v, 0)).toEqual({ lxcId: 3, key });
  });
});
