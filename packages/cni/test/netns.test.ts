import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CniError, checkNetnsPath, OWN_NETNS } from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'cni-netns-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function code(fn: () => unknown): number {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CniError);
    return (err as CniError).cniCode;
  }
  return 0;
}

describe('checkNetnsPath', () => {
  it('refuses the plugin’s own namespace with code 8, by any path that names it', () => {
    expect(code(() => checkNetnsPath(OWN_NETNS))).toBe(8);
    expect(code(() => checkNetnsPath(`/proc/${process.pid}/ns/net`))).toBe(8);
  });

  it('accepts the own namespace only with the override, and reports its identity', () => {
    const r = checkNetnsPath('/proc/self/ns/net', { allowOwn: true });
    expect(r.kind).toBe('ok');
  });

  it('refuses a path that is not on nsfs with code 8 naming the magic', () => {
    const f = join(dir, 'file');
    writeFileSync(f, 'x');
    try {
      checkNetnsPath(f);
      expect.unreachable();
    } catch (err) {
      expect((err as CniError).cniCode).toBe(8);
      expect((err as CniError).message).toContain('unknown FS magic');
    }
    expect(code(() => checkNetnsPath('/proc/self/status'))).toBe(8);
  });

  it('refuses a forbidden namespace (the configured host side)', () => {
    expect(code(() => checkNetnsPath('/proc/self/ns/net', { allowOwn: true, forbidden: [OWN_NETNS] }))).toBe(
      8,
    );
  });

  it('reports a path that does not exist as missing', () => {
    expect(checkNetnsPath(join(dir, 'gone'))).toEqual({ kind: 'missing' });
  });
});
