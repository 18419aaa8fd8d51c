import { describe, expect, it, vi } from 'vitest';
import {
  DatapathError,
  type DatapathErrorOptions,
  describeErrno,
  ERROR_CODES,
  Errno,
  type ErrorCode,
  errnoErrorOf,
  errnoName,
  isDatapathError,
  isErrorCode,
  notSupported,
} from '../src/index.js';

describe('DatapathError', () => {
  it('carries code, reason, op, syscall, target, errno and cause', () => {
    const cause = new Error('inner');
    const e = new DatapathError('Exhausted', 'm', {
      reason: 'Full',
      op: 'mapUpdate',
      syscall: 'bpf(BPF_MAP_UPDATE_ELEM)',
      target: 'lxc',
      errno: 7,
      errnoName: 'E2BIG',
      cause,
    });
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe('DatapathError');
    expect([e.code, e.reason, e.op, e.syscall, e.target, e.errno, e.errnoName]).toEqual([
      'Exhausted',
      'Full',
      'mapUpdate',
      'bpf(BPF_MAP_UPDATE_ELEM)',
      'lxc',
      7,
      'E2BIG',
    ]);
    expect(e.cause).toBe(cause);
  });

  it('keeps the subclass name and the ordinary instanceof for subclasses', () => {
    class AError extends DatapathError {
      override readonly name = 'AError';
    }
    class BError extends DatapathError {
      override readonly name = 'BError';
    }
    const a = new AError('NotFound', 'x');
    expect(a.name).toBe('AError');
    expect(a).toBeInstanceOf(DatapathError);
    expect(a instanceof AError).toBe(true);
    expect(a instanceof BError).toBe(false);
    expect(String(a)).toBe('AError: x');
  });

  it('is recognised across duplicate copies of the package (Symbol.for brand)', async () => {
    // A second, independent evaluation of the module: what two copies in node_modules amount to.
    vi.resetModules();
    const copy = await import('../src/base.js');
    expect(copy.DatapathError).not.toBe(DatapathError);
    const foreign = new copy.DatapathError('Busy', 'from the other copy');
    expect(foreign instanceof DatapathError).toBe(true);
    expect(isDatapathError(foreign)).toBe(true);
    expect(new DatapathError('Busy', 'x') instanceof copy.DatapathError).toBe(true);
    expect(new Error('plain') instanceof DatapathError).toBe(false);
    expect(isDatapathError({ code: 'Busy', name: 'DatapathError' })).toBe(false);
    expect(isDatapathError(null)).toBe(false);
  });

  it('names the feature and the minimum kernel of a NotSupported error', () => {
    const e = notSupported('tcx attachment', '6.6', { op: 'attachTcx', target: 'eth0' });
    expect([e.code, e.feature, e.minKernel, e.target]).toEqual([
      'NotSupported',
      'tcx attachment',
      '6.6',
      'eth0',
    ]);
    expect(e.message).toBe(
      'attachTcx: tcx attachment is not supported by this kernel (needs Linux 6.6 or later)',
    );
  });
});

describe('ErrorCode', () => {
  it('is a closed set checked by isErrorCode', () => {
    expect(new Set(ERROR_CODES).size).toBe(ERROR_CODES.length);
    for (const c of ERROR_CODES) expect(isErrorCode(c)).toBe(true);
    for (const c of ['Full', 'Timeout', 'NoSpace', 'toString', 7, undefined])
      expect(isErrorCode(c)).toBe(false);
  });
});

describe('errno table', () => {
  it('maps numbers to names and generic codes', () => {
    const cases: [number, string, string][] = [
      [1, 'EPERM', 'PermissionDenied'],
      [2, 'ENOENT', 'NotFound'],
      [4, 'EINTR', 'Interrupted'],
      [7, 'E2BIG', 'TooBig'],
      [11, 'EAGAIN', 'TryAgain'],
      [13, 'EACCES', 'PermissionDenied'],
      [16, 'EBUSY', 'Busy'],
      [17, 'EEXIST', 'AlreadyExists'],
      [22, 'EINVAL', 'InvalidArgument'],
      [28, 'ENOSPC', 'Exhausted'],
      [95, 'EOPNOTSUPP', 'NotSupported'],
      [101, 'ENETUNREACH', 'Unreachable'],
      [105, 'ENOBUFS', 'Exhausted'],
      [110, 'ETIMEDOUT', 'TimedOut'],
      [116, 'ESTALE', 'Stale'],
      [524, 'ENOTSUPP', 'NotSupported'],
    ];
    for (const [n, name, code] of cases) {
      expect(errnoName(n)).toBe(name);
      expect(Errno[name as keyof typeof Errno]).toBe(n);
      expect(describeErrno(n, { op: 'x' }).code).toBe(code);
    }
  });

  it('agrees with the platform errno constants', async () => {
    const { constants } = await import('node:os');
    for (const [name, n] of Object.entries(Errno)) {
      const platform = (constants.errno as Record<string, number>)[name];
      if (platform !== undefined) expect([name, n]).toEqual([name, platform]);
    }
  });

  it('reports an errno outside the table as Unknown with its number', () => {
    const d = describeErrno(4095, { op: 'linkAdd', syscall: 'RTM_NEWLINK' });
    expect([d.code, d.errnoName, d.message]).toEqual([
      'Unknown',
      'errno 4095',
      'linkAdd: RTM_NEWLINK failed: errno 4095',
    ]);
  });

  it('takes a call-specific meaning from the caller, not from the operation name', () => {
    const full = describeErrno(7, {
      op: 'mapUpdate',
      meaning: { E2BIG: { code: 'Exhausted', reason: 'Full' } },
    });
    expect([full.code, full.reason]).toEqual(['Exhausted', 'Full']);
    expect(describeErrno(7, { op: 'mapUpdate' }).code).toBe('TooBig');
    expect(describeErrno(11, { op: 'recv', meaning: { EAGAIN: 'TimedOut' } }).code).toBe('TimedOut');
    // A meaning for another errno leaves this one alone.
    expect(describeErrno(2, { op: 'x', meaning: { E2BIG: 'Exhausted' } }).code).toBe('NotFound');
  });

  it('builds the message and names the privilege on a permission failure only', () => {
    const denied = describeErrno(1, {
      op: 'linkAdd',
      syscall: 'RTM_NEWLINK',
      target: 'veth0',
      detail: 'Operation not permitted',
      privilege: 'CAP_NET_ADMIN',
    });
    expect(denied.message).toBe(
      'linkAdd: RTM_NEWLINK failed: EPERM (veth0): Operation not permitted (needs CAP_NET_ADMIN)',
    );
    const other = describeErrno(17, { op: 'linkAdd', privilege: 'CAP_NET_ADMIN' });
    expect(other.message).toBe('linkAdd: linkAdd failed: EEXIST');
  });
});

describe('errnoErrorOf', () => {
  class LayerError extends DatapathError {
    override readonly name: string = 'LayerError';
  }
  const make = (code: ErrorCode, message: string, o: DatapathErrorOptions) =>
    new LayerError(code, message, o);

  it("builds the layer's error from the one table, with the layer's default privilege and the kernel's text", () => {
    const e = errnoErrorOf(
      make,
      1,
      { op: 'linkAdd', syscall: 'RTM_NEWLINK', target: 'v0' },
      {
        privilege: 'CAP_NET_ADMIN',
        detail: 'extack text',
      },
    );
    expect(e).toBeInstanceOf(LayerError);
    expect(e).toBeInstanceOf(DatapathError);
    expect(e.code).toBe('PermissionDenied');
    expect(e.errno).toBe(1);
    expect(e.errnoName).toBe('EPERM');
    expect(e.message).toBe('linkAdd: RTM_NEWLINK failed: EPERM (v0): extack text (needs CAP_NET_ADMIN)');
  });

  it("keeps the caller's reason over the meaning's, takes a per-call privilege, and drops the errno-only options", () => {
    const full = errnoErrorOf(make, Errno.E2BIG, {
      op: 'mapUpdate',
      meaning: { E2BIG: { code: 'Exhausted', reason: 'Full' } },
    });
    expect([full.code, full.reason]).toEqual(['Exhausted', 'Full']);
    const mine = errnoErrorOf(make, Errno.E2BIG, {
      op: 'mapUpdate',
      reason: 'Mine',
      meaning: { E2BIG: { code: 'Exhausted', reason: 'Full' } },
    });
    expect(mine.reason).toBe('Mine');
    const denied = errnoErrorOf(make, 13, { op: 'x', privilege: 'root' }, { privilege: 'CAP_BPF' });
    expect(denied.message).toContain('(needs root)');
    expect(Object.keys(denied)).not.toContain('meaning');
    expect(Object.keys(denied)).not.toContain('privilege');
  });
});
