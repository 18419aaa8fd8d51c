import { DatapathError, isErrorCode } from '@datapath/errors';
import { describe, expect, it } from 'vitest';
import { PolicyError, parsePolicies } from '../src/index.js';

describe('PolicyError shares the SDK error base', () => {
  it('a validation failure is a DatapathError: InvalidArgument with reason InvalidPolicy', () => {
    let err: unknown;
    try {
      parsePolicies('kind: NetworkPolicy\nmetadata: { name: x }\nspec: { podSelector: 7 }\n');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PolicyError);
    expect(err).toBeInstanceOf(DatapathError);
    const e = err as PolicyError;
    expect([e.name, e.code, e.reason]).toEqual(['PolicyError', 'InvalidArgument', 'InvalidPolicy']);
    expect(e.problems.length).toBeGreaterThan(0);
  });

  it('keeps NotFound and Exhausted as codes, with no reason', () => {
    for (const code of ['NotFound', 'Exhausted', 'InvalidArgument'] as const) {
      const e = new PolicyError(code, 'x');
      expect([e.code, e.reason, isErrorCode(e.code)]).toEqual([code, undefined, true]);
    }
  });
});
