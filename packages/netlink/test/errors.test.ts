import { DatapathError, isErrorCode } from '@datapath/errors';
import { describe, expect, it } from 'vitest';
import { invalidArgument } from '../src/errors.js';
import { errnoError, NetlinkError } from '../src/index.js';

describe('NetlinkError shares the SDK error base', () => {
  it('is a DatapathError with a code from the closed set, for kernel answers and bad arguments', () => {
    for (const errno of [1, 2, 11, 16, 17, 22, 28, 71, 101, 105, 110, 9999]) {
      const e = errnoError(errno, { op: 'linkAdd', syscall: 'RTM_NEWLINK', target: 'v0' });
      expect(e).toBeInstanceOf(NetlinkError);
      expect(e).toBeInstanceOf(DatapathError);
      expect(e.name).toBe('NetlinkError');
      expect(isErrorCode(e.code)).toBe(true);
      expect(e.errno).toBe(errno);
    }
    const bad = invalidArgument('linkAdd', 'bad name', 'x%d');
    expect(bad).toBeInstanceOf(DatapathError);
    expect([bad.code, bad.errno]).toEqual(['InvalidArgument', undefined]);
  });

  it('maps through the one errno table, with the kernel message and the capability', () => {
    const e = errnoError(1, { op: 'linkAdd', syscall: 'RTM_NEWLINK', target: 'v0', kernelMessage: 'nope' });
    expect([e.code, e.errnoName, e.kernelMessage]).toEqual(['PermissionDenied', 'EPERM', 'nope']);
    expect(e.message).toBe('linkAdd: RTM_NEWLINK failed: EPERM (v0): nope (needs CAP_NET_ADMIN, or root)');
    expect(errnoError(105, { op: 'dump' }).code).toBe('Exhausted'); // ENOBUFS
    expect(errnoError(11, { op: 'x' }).code).toBe('TryAgain');
    // A receive timeout says so itself: the caller gives EAGAIN its meaning there.
    expect(errnoError(11, { op: 'x', meaning: { EAGAIN: 'TimedOut' } }).code).toBe('TimedOut');
  });
});
