import { DatapathError, ERROR_CODES, type ErrorCode } from '@datapath/errors';
import { describe, expect, it } from 'vitest';
import { CniError, CniErrorCode, toCniError } from '../src/index.js';

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
    expect(() => new CniError(0, 'x')).toThrow(expect.objectContaining({ code: 'InvalidArgument' }));
  });

  it('is a DatapathError: an SDK code beside its numeric CNI code', () => {
    const e = new CniError(CniErrorCode.InvalidNetworkConfig, 'bad subnet');
    expect(e).toBeInstanceOf(DatapathError);
    expect([e.name, e.code, e.reason, e.cniCode]).toEqual([
      'CniError',
      'InvalidArgument',
      'InvalidNetworkConfig',
      7,
    ]);
    expect(new CniError(11, 'x').code).toBe('TryAgain');
    expect(new CniError(50, 'x').code).toBe('Unavailable');
    expect(new CniError(999, 'x').code).toBe('Unknown');
    expect(new CniError(123, 'plugin-defined').code).toBe('Unknown');
    for (const n of Object.values(CniErrorCode)) expect(ERROR_CODES).toContain(new CniError(n, 'x').code);
  });
});

class FakeNetlinkError extends DatapathError {
  override readonly name = 'NetlinkError';
}

describe('toCniError (the one SDK → CNI translation)', () => {
  it.each([
    ['Exhausted', 'Full', 11],
    ['TimedOut', undefined, 11],
    ['TryAgain', undefined, 11],
    ['Busy', 'Conflict', 11],
    ['Interrupted', undefined, 11],
    ['Unavailable', undefined, 11],
    ['InvalidArgument', 'InvalidCidr', 7],
    ['TooBig', 'SubnetTooBig', 7],
    ['AlreadyExists', 'AlreadyAllocated', 999],
    ['PermissionDenied', undefined, 999],
    ['NotSupported', undefined, 999],
    ['Unknown', undefined, 999],
  ] as [ErrorCode, string | undefined, number][])(
    '%s (%s) → %i, keeping the message, code, reason, the origin in details and the cause',
    (code, reason, cni) => {
      const src = new FakeNetlinkError(code, `says ${code}`, { reason });
      const e = toCniError(src);
      expect(e.cniCode).toBe(cni);
      expect(e.toJson('1.1.0').code).toBe(cni);
      expect(e.code).toBe(code);
      // The origin's reason travels on; without one, the CNI code's name says what the runtime sees.
      expect(e.reason).toBe(reason ?? (cni === 11 ? 'TryAgainLater' : 'Internal'));
      expect(e.message).toBe(`says ${code}`);
      expect(e.details).toBe(`NetlinkError ${code}${reason === undefined ? '' : ` (${reason})`}`);
      expect(e.cause).toBe(src);
    },
  );

  it('maps every code of the closed set to 7, 11 or 999', () => {
    for (const code of ERROR_CODES)
      expect([7, 11, 999]).toContain(toCniError(new DatapathError(code, 'x')).cniCode);
  });

  it('matches on the code, never on the name or a look-alike object', () => {
    // A look-alike with an SDK-ish name and code but no SDK brand is a foreign error: 999.
    const lookAlike = Object.assign(new Error('range full'), { name: 'IpamError', code: 'Exhausted' });
    expect(toCniError(lookAlike).cniCode).toBe(999);
    // Any subclass name works, as long as it is a DatapathError.
    class SomethingNewError extends DatapathError {}
    expect(toCniError(new SomethingNewError('TimedOut', 'late')).cniCode).toBe(11);
  });

  it('passes a CniError through and maps anything else to 999', () => {
    const c = new CniError(CniErrorCode.PluginNotAvailable, 'down');
    expect(toCniError(c)).toBe(c);
    expect(toCniError(new Error('x')).cniCode).toBe(999);
    expect(toCniError(Object.assign(new Error('enoent'), { code: 'ENOENT' })).cniCode).toBe(999);
    expect(toCniError('a string').message).toBe('a string');
  });
});
