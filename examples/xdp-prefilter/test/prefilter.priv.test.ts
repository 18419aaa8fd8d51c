import { existsSync } from 'node:fs';
import { requireRoot, scanLeaks, uniqueName } from '@datapath/testutils';
import { describe, expect, it } from 'vitest';
import { PrefilterLab } from '../src/prefilter.js';

describe('xdp-prefilter', () => {
  it('drops exactly the deny-listed sources at XDP, counts per CIDR, and follows deny-list updates', async (ctx) => {
    requireRoot(ctx);
    const prefix = uniqueName();
    const lab = await PrefilterLab.create(prefix, ['10.244.9.10', '10.244.9.130', '10.244.9.200']);
    try {
      expect(existsSync(`/run/netns/${prefix}-s`)).toBe(true);
      lab.setDenyList(['10.244.9.0/26', '10.244.9.128/28']);
      expect(lab.ping('10.244.9.10', 10).received).toBe(0);
      expect(lab.ping('10.244.9.130', 10).received).toBe(0);
      expect(lab.ping('10.244.9.200', 10).received).toBe(10);
      const c = lab.counters();
      expect(c.hits).toEqual({ '10.244.9.0/26': 10n, '10.244.9.128/28': 10n });
      expect(c.dropped).toBe(20n);
      expect(c.passed).toBeGreaterThanOrEqual(10n);
      // lifting one rule lets that source through at once; the other stays blocked
      expect(lab.setDenyList(['10.244.9.128/28'])).toBe(1);
      expect(lab.ping('10.244.9.10', 5).received).toBe(5);
      expect(lab.ping('10.244.9.130', 5).received).toBe(0);
      expect(lab.counters().hits).toEqual({ '10.244.9.0/26': 10n, '10.244.9.128/28': 15n });
    } finally {
      lab.close();
    }
    expect(scanLeaks(prefix)).toEqual({ netns: [], links: [], pins: [] });
  });
});
