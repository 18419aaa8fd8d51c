import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { expectLayoutsMatch } from '../../../packages/loader/test/helpers/layouts.js';
import { formatted } from '../scripts/gen.js';
import * as gen from '../src/datapath.gen.js';
import { GENERATED, generateDatapathModule } from '../src/layout.js';
import { FWD_MAX_ENDPOINTS, REASONS, reasonName } from '../src/maps.js';

describe('src/datapath.gen.ts', () => {
  it('is what bpf/datapath.c generates (run `pnpm --filter @datapath/example-agent run gen` after changing the C)', async () => {
    const { text } = await generateDatapathModule();
    expect(readFileSync(GENERATED, 'utf8')).toBe(formatted(text));
  });

  it('has every struct at the size and field offsets of bpftool btf dump', async () => {
    const { object } = await generateDatapathModule();
    expect(Object.keys(gen.types)).toEqual(
      expect.arrayContaining([
        'endpoint_info',
        'ct_key',
        'ct_entry',
        'metrics_key',
        'fwd_value',
        'dp_config',
      ]),
    );
    expectLayoutsMatch(gen.types, object);
  });

  it('carries the C enums and limits the agent used to copy by hand', () => {
    expect(FWD_MAX_ENDPOINTS).toBe(4096);
    expect(REASONS).toEqual([
      'forwarded',
      'arp-reply',
      'policy-denied',
      'policy-deny',
      'invalid-source',
      'no-endpoint',
      'unsupported-l3',
      'ttl-exceeded',
      'invalid-packet',
      'no-tunnel-key',
      'invalid-identity',
      'tunnel-failed',
    ]);
    expect(reasonName(gen.MetricReason.REASON_POLICY_DENY)).toBe('policy-deny');
    // the agent's own constant, then @datapath/lb's (svc.h: NodePort translation)
    expect(gen.constantDefaults).toMatchObject({
      gateway_ipv4: 0,
      nat_ipv4: 0,
      nat_port_min: 32768,
      nat_port_max: 65535,
    });
  });
});
