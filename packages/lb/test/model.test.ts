import { describe, expect, it } from 'vitest';
import { LbError, parseService } from '../src/index.js';

const base = {
  name: 'default/web:http',
  protocol: 'TCP',
  frontends: [{ address: '10.96.0.10', port: 80 }],
  backends: [{ address: '10.244.1.5', port: 8080 }],
};

function reasons(input: unknown, limits?: { maxBackends: number }): string[] {
  try {
    parseService(input, limits);
  } catch (e) {
    expect(e).toBeInstanceOf(LbError);
    return (e as LbError).problems.map((p) => `${p.reason} ${p.path}`);
  }
  return [];
}

describe('parseService', () => {
  it('normalises: canonical addresses, defaults for kind, weight, state, selection', () => {
    const s = parseService({
      ...base,
      frontends: [{ address: 'fd00:0::10', port: 80, kind: 'NodePort' }],
      backends: [{ address: 'FD00::0:5', port: 8080 }],
      affinity: {},
    });
    expect(s.family).toBe(6);
    expect(s.frontends).toEqual([{ kind: 'NodePort', address: 'fd00::10', port: 80 }]);
    expect(s.backends).toEqual([{ address: 'fd00::5', port: 8080, weight: 1, state: 'active' }]);
    expect(s.selection).toBe('random');
    expect(s.affinityTimeoutSeconds).toBe(10800);
  });

  it('accepts zero backends (the datapath refuses connections to it)', () => {
    expect(parseService({ ...base, backends: [] }).backends).toEqual([]);
  });

  it('refuses an invalid port or protocol with typed reasons and every problem', () => {
    expect(reasons({ ...base, protocol: 'SCTP' })).toEqual(['InvalidProtocol protocol']);
    expect(reasons({ ...base, frontends: [{ address: '10.96.0.10', port: 0 }] })).toEqual([
      'InvalidPort frontends[0].port',
    ]);
    expect(
      reasons({
        ...base,
        backends: [
          { address: '10.244.1.5', port: 70000 },
          { address: '10.244.1.6', port: 1.5 },
        ],
      }),
    ).toEqual(['InvalidPort backends[0].port', 'InvalidPort backends[1].port']);
    try {
      parseService({ ...base, protocol: 'tcp' });
    } catch (e) {
      expect((e as LbError).code).toBe('InvalidArgument');
      expect((e as LbError).reason).toBe('InvalidProtocol');
    }
  });

  it('refuses duplicate frontends and backends, mixed families, bad addresses', () => {
    expect(
      reasons({
        ...base,
        frontends: [
          { address: '10.96.0.10', port: 80 },
          { address: '10.96.0.10', port: 80, kind: 'ExternalIP' },
        ],
      }),
    ).toEqual(['DuplicateFrontend frontends[1]']);
    expect(
      reasons({
        ...base,
        backends: [
          { address: '10.244.1.5', port: 8080 },
          { address: '10.244.1.5', port: 8080, weight: 3 },
        ],
      }),
    ).toEqual(['DuplicateBackend backends[1]']);
    expect(reasons({ ...base, backends: [{ address: 'fd00::5', port: 8080 }] })).toEqual([
      'FamilyMismatch backends[0].address',
    ]);
    expect(reasons({ ...base, backends: [{ address: '10.244.1', port: 8080 }] })).toEqual([
      'InvalidAddress backends[0].address',
    ]);
    try {
      parseService({ ...base, frontends: [...base.frontends, ...base.frontends] });
    } catch (e) {
      expect((e as LbError).code).toBe('AlreadyExists');
    }
  });

  it('refuses more backends than the slot limit (code TooBig)', () => {
    const backends = Array.from({ length: 5 }, (_, i) => ({ address: `10.244.1.${i + 1}`, port: 80 }));
    expect(reasons({ ...base, backends }, { maxBackends: 4 })).toEqual(['TooManyBackends backends']);
    try {
      parseService({ ...base, backends }, { maxBackends: 4 });
    } catch (e) {
      expect((e as LbError).code).toBe('TooBig');
    }
    expect(parseService({ ...base, backends }, { maxBackends: 5 }).backends).toHaveLength(5);
  });

  it('refuses unknown fields, empty frontends, bad weights and affinity timeouts', () => {
    expect(reasons({ ...base, extra: 1 })[0]).toMatch(/^InvalidService/);
    expect(reasons({ ...base, frontends: [] })[0]).toMatch(/^InvalidService frontends/);
    expect(reasons({ ...base, backends: [{ address: '10.244.1.5', port: 80, weight: -1 }] })).toEqual([
      'InvalidWeight backends[0].weight',
    ]);
    expect(reasons({ ...base, affinity: { timeoutSeconds: 0 } })).toEqual([
      'InvalidAffinity affinity.timeoutSeconds',
    ]);
    expect(reasons(null)[0]).toMatch(/^InvalidService/);
  });
});
