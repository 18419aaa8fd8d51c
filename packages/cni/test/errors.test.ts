import { describe, expect, it } from 'vitest';
import { CniError, CniErrorCode, toCniError } from '../src/index.js';

function sdkError(name: string, code: string, message = 'boom'): Error {
  const e = new Error(message);
  e.name = name;
  Object.assign(e, { code });
  return e;
}

describe('CniError', () => {
  it('serialises as the spec object with cniVersion, leaving out empty details', () => {
    expect(new CniError(7, 'bad', 'why').toJson('1.0.0')).toEqual({
      cniVersion: '1.0.0',
      code: 7,
      msg: 'bad',
      details: 'why',
    });
    expect(new CniError(11, 'later', '').toJson('0.4.0')).toEqual({
      cniVersion: '0.4.0',
      code: 11,
      msg: 'later',
    });
    expect(() => new CniError(0, 'x')).toThrow(RangeError);
  });
});

describe('toCniError (the one SDK → CNI translation)', () => {
  it.each([
    ['IpamError', 'Full', 11],
    ['IpamError', 'InvalidCidr', 7],
    ['IpamError', 'MaskInvalid', 7],
    ['IpamError', 'AlreadyAllocated', 999],
    ['NetlinkError', 'Busy', 11],
    ['NetlinkError', 'InvalidArgument', 7],
    ['NetlinkError', 'AlreadyExists', 999],
    ['NetdevError', 'InvalidArgument', 7],
    ['BpfError', 'PermissionDenied', 999],
    ['BpfError', 'NoSpace', 11],
    ['LoaderError', 'SomethingNew', 999],
  ])('%s %s → %i, keeping the message, the origin in details and the cause', (name, code, cni) => {
    const src = sdkError(name, code, `${name} says ${code}`);
    const e = toCniError(src);
    expect(e.code).toBe(cni);
    expect(e.message).toBe(`${name} says ${code}`);
    expect(e.details).toBe(`${name} ${code}`);
    expect(e.cause).toBe(src);
  });

  it('passes a CniError through and maps anything else to 999', () => {
    const c = new CniError(CniErrorCode.PluginNotAvailable, 'down');
    expect(toCniError(c)).toBe(c);
    expect(toCniError(new Error('x')).code).toBe(999);
    expect(toCniError(Object.assign(new Error('enoent'), { code: 'ENOENT' })).code).toBe(999);
    expect(toCniError('a string').message).toBe('a string');
  });
});
