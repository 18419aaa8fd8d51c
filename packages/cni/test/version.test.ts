import { describe, expect, it } from 'vitest';
import { ALL_VERSIONS, CniError, compareVersions, negotiateVersion, versionInfo } from '../src/index.js';

describe('versions', () => {
  it('orders versions numerically', () => {
    const shuffled = ['1.1.0', '0.3.1', '0.1.0', '1.0.0', '0.4.0', '0.2.0', '0.3.0'];
    expect(shuffled.sort(compareVersions)).toEqual([...ALL_VERSIONS]);
    expect(compareVersions('0.10.0', '0.9.0')).toBeGreaterThan(0);
    expect(() => compareVersions('1.0', '1.0.0')).toThrow(CniError);
  });

  it('negotiates by exact membership and explains a refusal like libcni', () => {
    expect(negotiateVersion('0.3.1', ALL_VERSIONS)).toBe('0.3.1');
    try {
      negotiateVersion('1.1.0', ['0.4.0', '1.0.0']);
      expect.unreachable();
    } catch (err) {
      const e = err as CniError;
      expect(e.cniCode).toBe(1);
      expect(e.message).toBe('incompatible CNI versions');
      expect(e.details).toBe('config is "1.1.0", plugin supports ["0.4.0" "1.0.0"]');
    }
    expect(() => negotiateVersion('0.5.0', ALL_VERSIONS)).toThrow(CniError);
  });

  it('echoes the requested version in VERSION, else the newest supported one', () => {
    expect(versionInfo('0.4.0', ALL_VERSIONS)).toEqual({
      cniVersion: '0.4.0',
      supportedVersions: [...ALL_VERSIONS],
    });
    expect(versionInfo(undefined, ['1.0.0', '0.4.0']).cniVersion).toBe('1.0.0');
    expect(versionInfo('garbage', ALL_VERSIONS).cniVersion).toBe('1.1.0');
  });
});
