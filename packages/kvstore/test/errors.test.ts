import { DatapathError, isErrorCode } from '@datapath/errors';
import { describe, expect, it } from 'vitest';
import { KvError, MemoryStore } from '../src/index.js';

describe('KvError shares the SDK error base', () => {
  it('bad arguments and calls after close are DatapathErrors with codes from the closed set', async () => {
    const s = new MemoryStore();
    const bad = await s.put('', 'x').catch((e: unknown) => e);
    await s.close();
    const closed = await s.get('x').catch((e: unknown) => e);
    for (const e of [bad, closed]) {
      expect(e).toBeInstanceOf(KvError);
      expect(e).toBeInstanceOf(DatapathError);
      expect((e as KvError).name).toBe('KvError');
      expect(isErrorCode((e as KvError).code)).toBe(true);
    }
    expect([(bad as KvError).code, (closed as KvError).code, (closed as KvError).reason]).toEqual([
      'InvalidArgument',
      'InvalidState',
      'Closed',
    ]);
  });

  it('a timeout is TimedOut, the same code netlink uses', () => {
    expect(new KvError('TimedOut', 'late', { op: 'put' }).code).toBe('TimedOut');
  });
});
