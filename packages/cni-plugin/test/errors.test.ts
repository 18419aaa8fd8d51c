import { DatapathError, isErrorCode } from '@datapath/errors';
import { describe, expect, it } from 'vitest';
import { InstallError, installPlugin } from '../src/index.js';

describe('cni-plugin errors share the SDK error base', () => {
  it('an install refusal is an InstallError, a DatapathError with a code from the closed set', () => {
    let err: unknown;
    try {
      installPlugin({ binDir: '/nonexistent-dp-bin', name: '../x' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InstallError);
    expect(err).toBeInstanceOf(DatapathError);
    expect([(err as InstallError).name, (err as InstallError).code]).toEqual([
      'InstallError',
      'InvalidArgument',
    ]);
    const failed = new InstallError('Failed', 'x');
    expect([failed.code, failed.reason, isErrorCode(failed.code)]).toEqual(['Unknown', 'Failed', true]);
  });
});
