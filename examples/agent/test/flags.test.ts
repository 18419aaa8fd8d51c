/**
 * The flag bits the agent names in TypeScript (maps.ts) are C preprocessor constants in bpf/datapath.h,
 * which BTF does not carry: this test reads them from the header, so the two cannot drift.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CT_F_DENIED, CT_F_REPLY, DP_F_DELIVER_EGRESS } from '../src/maps.js';

const header = readFileSync(new URL('../bpf/datapath.h', import.meta.url), 'utf8');

function define(name: string): number {
  const m = new RegExp(`^#define ${name}\\s+(\\d+|0x[0-9a-fA-F]+)\\b`, 'm').exec(header);
  if (m === null) throw new Error(`bpf/datapath.h has no #define ${name}`);
  return Number(m[1]);
}

describe('flag bits shared with bpf/datapath.h', () => {
  it('have the values of the header', () => {
    expect({ CT_F_REPLY, CT_F_DENIED, DP_F_DELIVER_EGRESS }).toEqual({
      CT_F_REPLY: define('CT_F_REPLY'),
      CT_F_DENIED: define('CT_F_DENIED'),
      DP_F_DELIVER_EGRESS: define('DP_F_DELIVER_EGRESS'),
    });
  });
});
