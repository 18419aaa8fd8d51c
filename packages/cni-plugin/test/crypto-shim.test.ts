import * as nodeCrypto from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createHash, randomBytes, randomUUID } from '../src/shims/crypto.js';

describe('the bundle’s node:crypto stand-in', () => {
  it('computes SHA-256 exactly as node:crypto, for strings and bytes, in one or several updates', () => {
    expect(createHash('sha256').update('').digest('hex')).toBe(
      'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    );
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.string({ maxLength: 200 }), fc.uint8Array({ maxLength: 300 })), {
          maxLength: 5,
        }),
        (parts) => {
          const ours = createHash('sha256');
          const ref = nodeCrypto.createHash('sha256');
          for (const p of parts) {
            ours.update(p);
            ref.update(p);
          }
          expect(ours.digest('hex')).toBe(ref.digest('hex'));
        },
      ),
      { numRuns: 300 },
    );
    expect(createHash('sha256').update('x').digest()).toEqual(
      nodeCrypto.createHash('sha256').update('x').digest(),
    );
  });

  it('refuses other algorithms and a second digest', () => {
    expect(() => createHash('md5')).toThrow(/sha256 only/);
    const h = createHash('sha256');
    h.digest();
    expect(() => h.digest()).toThrow();
  });

  it('gives random bytes and version-4 UUIDs', () => {
    expect(randomBytes(32)).toHaveLength(32);
    expect(randomBytes(16).equals(randomBytes(16))).toBe(false);
    expect(randomUUID()).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });
});
