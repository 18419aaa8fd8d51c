import { DatapathError, isErrorCode } from '@datapath/errors';
import { describe, expect, it } from 'vitest';
import { IpamError, type IpamReason, RangeAllocator } from '../src/index.js';

describe('IpamError shares the SDK error base', () => {
  it('a full range is a DatapathError: Exhausted with reason Full', () => {
    const r = new RangeAllocator('10.0.0.0/30');
    r.allocateNext();
    r.allocateNext();
    let err: unknown;
    try {
      r.allocateNext();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(IpamError);
    expect(err).toBeInstanceOf(DatapathError);
    const e = err as IpamError;
    expect([e.name, e.code, e.reason, e.target]).toEqual(['IpamError', 'Exhausted', 'Full', '10.0.0.0/30']);
  });

  it('gives every reason one code of the closed set', () => {
    const expected: Record<IpamReason, string> = {
      Full: 'Exhausted',
      AlreadyAllocated: 'AlreadyExists',
      Collision: 'AlreadyExists',
      TimerExists: 'AlreadyExists',
      NotInPool: 'NotFound',
      NoTimer: 'NotFound',
      NotInRange: 'InvalidArgument',
      OutOfRange: 'InvalidArgument',
      Mismatch: 'InvalidArgument',
      InvalidCidr: 'InvalidArgument',
      MaskInvalid: 'InvalidArgument',
      Family: 'InvalidArgument',
      Excluded: 'InvalidArgument',
      InvalidSnapshot: 'InvalidArgument',
      SubnetTooBig: 'TooBig',
      TokenMismatch: 'Stale',
      StoreFailure: 'Io',
      Cooling: 'Exhausted',
      Busy: 'Busy',
      NotSupported: 'NotSupported',
    };
    for (const [reason, code] of Object.entries(expected)) {
      const e = new IpamError(reason as IpamReason, 'x', { op: 'o' });
      expect([e.code, e.reason, isErrorCode(e.code)]).toEqual([code, reason, true]);
    }
  });
});
