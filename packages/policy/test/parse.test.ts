import { describe, expect, it } from 'vitest';
import { PolicyError, parsePolicies, validatePolicies } from '../src/index.js';

function problems(fn: () => unknown) {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(PolicyError);
    expect([(e as PolicyError).code, (e as PolicyError).reason]).toEqual([
      'InvalidArgument',
      'InvalidPolicy',
    ]);
    return (e as PolicyError).problems.map((p) => `${p.path}: ${p.message}`);
  }
  throw new Error('expected a PolicyError');
}

describe('parsePolicies', () => {
  it('reads single documents, multi-document YAML, JSON arrays and Lists', () => {
    const yaml = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: a, namespace: x }
spec: { podSelector: {} }
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: b, namespace: x }
spec:
  endpointSelector: { matchLabels: { "k8s:app": web } }
  ingress: [{ fromEntities: [world], toPorts: [{ ports: [{ port: "80", protocol: TCP }] }] }]
---
kind: List
items:
  - kind: CiliumClusterwideNetworkPolicy
    metadata: { name: c }
    specs: [{ endpointSelector: {}, egressDeny: [{ toCIDRSet: [{ cidr: 0.0.0.0/0, except: [10.0.0.0/8] }] }] }]
`;
    expect(parsePolicies(yaml).map((p) => `${p.kind}/${p.metadata.name}`)).toEqual([
      'NetworkPolicy/a',
      'CiliumNetworkPolicy/b',
      'CiliumClusterwideNetworkPolicy/c',
    ]);
    const json = JSON.stringify([
      { kind: 'NetworkPolicy', metadata: { name: 'j' }, spec: { podSelector: {} } },
    ]);
    expect(parsePolicies(json)).toHaveLength(1);
  });

  it('reports every problem with its path, never a partial load', () => {
    const doc = {
      kind: 'NetworkPolicy',
      metadata: { name: 'bad', namespace: 'x' },
      spec: {
        podSelector: { matchExpressions: [{ key: 'app', operator: 'In' }] },
        policyTypes: ['Sideways'],
        ingress: [
          {
            from: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['192.168.0.0/16'] }, podSelector: {} }, {}],
            ports: [
              { port: 80 },
              { port: 90, endPort: 85 },
              { port: 'http', endPort: 90 },
              { protocol: 'ICMP' },
              { port: 70000 },
            ],
          },
        ],
      },
    };
    expect(problems(() => validatePolicies(doc))).toEqual(
      expect.arrayContaining([
        'spec.podSelector.matchExpressions[0].values: must be non-empty for operator In',
        expect.stringMatching(/^spec\.policyTypes\[0\]: /),
        'spec.ingress[0].from[0].ipBlock.except[0]: must be a strict subnet of 10.0.0.0/8',
        'spec.ingress[0].from[0].ipBlock: may not be combined with podSelector or namespaceSelector',
        'spec.ingress[0].from[1]: must specify podSelector, namespaceSelector or ipBlock',
        'spec.ingress[0].ports[1].endPort: must be ≥ port',
        'spec.ingress[0].ports[2].endPort: requires a numeric port',
        expect.stringMatching(/^spec\.ingress\[0\]\.ports\[3\]\.protocol: /),
        expect.stringMatching(/^spec\.ingress\[0\]\.ports\[4\]\.port: /),
      ]),
    );
  });

  it('prefixes paths with the document index in a stream and rejects the whole stream', () => {
    const text = `kind: NetworkPolicy\nmetadata: { name: ok }\nspec: { podSelector: {} }\n---\nkind: NetworkPolicy\nmetadata: { name: bad }\nspec: { podSelector: {}, ingress: [{ ports: [{ port: 5, endPort: 1 }] }] }\n`;
    expect(problems(() => parsePolicies(text))).toEqual([
      '[1].spec.ingress[0].ports[0].endPort: must be ≥ port',
    ]);
  });

  it('rejects unknown kinds, typos, unsupported features and bad YAML', () => {
    expect(problems(() => validatePolicies({ kind: 'Pod', metadata: { name: 'x' } }))).toEqual([
      'kind: must be NetworkPolicy, CiliumNetworkPolicy or CiliumClusterwideNetworkPolicy (got "Pod")',
    ]);
    expect(
      problems(() =>
        validatePolicies({
          kind: 'CiliumNetworkPolicy',
          metadata: { name: 'c' },
          spec: {
            endpointSelector: {},
            ingress: [{ fromEndpoint: [{}] }],
            egress: [
              {
                toFQDNs: [{ matchName: 'x.com' }],
                toPorts: [{ ports: [{ port: '80' }], rules: { http: [] } }],
              },
            ],
          },
        }),
      ),
    ).toEqual(
      expect.arrayContaining([
        'spec.ingress[0]: Unrecognized key: "fromEndpoint"',
        'spec.egress[0].toFQDNs: is not supported by @datapath/policy',
        'spec.egress[0].toPorts[0].rules: is not supported by @datapath/policy',
      ]),
    );
    expect(
      problems(() => validatePolicies({ kind: 'CiliumNetworkPolicy', metadata: { name: 'c' } })),
    ).toEqual(['spec: spec or specs is required']);
    expect(problems(() => parsePolicies('kind: [unclosed'))[0]).toMatch(/^\(root\): YAML: /);
  });

  it('validates CNP ports: names, "0", ranges', () => {
    const cnp = (ports: unknown[]) => ({
      kind: 'CiliumNetworkPolicy',
      metadata: { name: 'p' },
      spec: { endpointSelector: {}, ingress: [{ toPorts: [{ ports }] }] },
    });
    expect(
      validatePolicies(cnp([{ port: '0' }, { port: 'http' }, { port: '80', endPort: 90, protocol: 'ANY' }])),
    ).toHaveLength(1);
    expect(
      problems(() => validatePolicies(cnp([{ port: '0', endPort: 5 }, { port: 'Not_A_Name' }]))),
    ).toEqual([
      'spec.ingress[0].toPorts[0].ports[0].endPort: requires a numeric, non-zero port',
      'spec.ingress[0].toPorts[0].ports[1].port: a port name must be lowercase alphanumerics and dashes',
    ]);
  });
});
