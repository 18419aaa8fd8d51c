import { DatapathError, isErrorCode } from '@datapath/errors';
import { describe, expect, it } from 'vitest';
import { IpError, parseIp } from '../src/index.js';

describe('IpError shares the SDK error base', () => {
  it('bad text is a DatapathError: InvalidArgument from the closed set', () => {
    let err: unknown;
    try {
      parseIp('10.0.0.256');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(IpError);
    expect(err).toBeInstanceOf(DatapathError);
    const e = err as IpError;
    expect([e.name, e.code, e.op, e.target, isErrorCode(e.code)]).toEqual([
      'IpError',
      'InvalidArgument',
      'parseIp',
      '10.0.0.256',
      true,
    ]);
  });
});
