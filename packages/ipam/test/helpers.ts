import { DatapathError, isErrorCode } from '@datapath/errors';
import { expect } from 'vitest';
import { IpamError, type IpamReason } from '../src/index.js';

/** Asserts that fn throws an IpamError (a DatapathError) with the allocator's `reason`, and returns it. */
export function expectCode(fn: () => unknown, reason: IpamReason): IpamError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(IpamError);
    expect(e).toBeInstanceOf(DatapathError);
    expect((e as IpamError).reason).toBe(reason);
    expect(isErrorCode((e as IpamError).code)).toBe(true);
    return e as IpamError;
  }
  throw new Error(`expected IpamError ${reason}, nothing was thrown`);
}

/** A deterministic [0,1) generator (mulberry32). */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
