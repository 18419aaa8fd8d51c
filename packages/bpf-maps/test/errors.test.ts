import { DatapathError, isErrorCode } from '@datapath/errors';
import { BpfError } from '@datapath/libbpf';
import { describe, expect, it } from 'vitest';
import { struct, u8, u32 } from '../src/index.js';

describe('bpf-maps errors share the SDK error base', () => {
  it('a rejected layout is a BpfError, a DatapathError with a code from the closed set', () => {
    let err: unknown;
    try {
      struct({ a: u8, b: u32 }, { size: 5 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BpfError);
    expect(err).toBeInstanceOf(DatapathError);
    expect((err as DatapathError).name).toBe('BpfError');
    expect(isErrorCode((err as DatapathError).code)).toBe(true);
  });
});
