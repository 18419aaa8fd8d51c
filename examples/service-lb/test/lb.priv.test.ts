import { existsSync } from 'node:fs';
import { requireRoot, scanLeaks, uniqueName } from '@datapath/testutils';
import { describe, expect, it } from 'vitest';
import { ServiceLab } from '../src/lb.js';

describe('service-lb', () => {
  it('spreads connections to the service address over its backends at connect(), and follows updates', async (ctx) => {
    requireRoot(ctx);
    const prefix = uniqueName();
    const lab = await ServiceLab.create(prefix, 3, 8080);
    try {
      const ips = lab.backends.map((b) => b.ip);
      // before the service exists, the address is just unroutable for the client
      expect(lab.connect('10.96.0.10', 80, 1)).toEqual(['error ENETUNREACH']);
      lab.setService('10.96.0.10', 80, ips, 8080);
      const answers = lab.connect('10.96.0.10', 80, 30);
      expect(answers).toHaveLength(30);
      const seen = new Set(answers.map((a) => ips[Number(a.split(' ')[0]!.slice(8))]));
      expect([...seen].sort()).toEqual([...ips].sort()); // 3 backends, 30 tries: each one answered
      for (const a of answers) expect(a).toMatch(/^backend-\d 10\.96\.0\.10$/);
      // getpeername() shows the service, not the backend
      expect(lab.connect('10.96.0.10', 80, 1)[0]).toMatch(/^backend-\d 10\.96\.0\.10$/);
      // a direct connection to a backend is not rewritten
      expect(lab.connect(ips[1]!, 8080, 1)).toEqual([`backend-1 ${ips[1]}`]);
      // drained backend gets nothing more
      lab.setService('10.96.0.10', 80, [ips[0]!], 8080);
      expect(new Set(lab.connect('10.96.0.10', 80, 10))).toEqual(new Set(['backend-0 10.96.0.10']));
    } finally {
      await lab.close();
    }
    expect(existsSync(lab.cgroupDir)).toBe(false);
    expect(scanLeaks(prefix)).toEqual({ netns: [], links: [], pins: [] });
  });
});
