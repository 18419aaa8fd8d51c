import { expect } from 'vitest';
import { IpamError, type IpamErrorCode } from '../src/index.js';

/** Asserts that fn throws an IpamError with `code`, and returns it. */
export function expectCode(fn: () => unknown, code: IpamErrorCode): IpamError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(IpamError);
    expect((e as IpamError).code).toBe(code);
    return e as IpamError;
  }
  throw new Error(`expected IpamError ${code}, nothing was thrown`);
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
