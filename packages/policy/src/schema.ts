import { prefixContains } from '@datapath/ip';
import { z } from 'zod';
import { tryParsePrefix } from './prefix.js';
import type { Entity } from './types.js';

const LABEL_KEY =
  /^([A-Za-z0-9-]+:)?([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const PORT_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;

const labelKey = z
  .string()
  .regex(LABEL_KEY, 'must be a label key such as `app` or `k8s:app.kubernetes.io/name`');
const labelValue = z.string().max(63, 'must be at most 63 characters');

const requirement = z
  .strictObject({
    key: labelKey,
    operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist']),
    values: z.array(labelValue).optional(),
  })
  .superRefine((r, ctx) => {
    const n = r.values?.length ?? 0;
    if ((r.operator === 'In' || r.operator === 'NotIn') && n === 0)
      ctx.addIssue({
        code: 'custom',
        path: ['values'],
        message: `must be non-empty for operator ${r.operator}`,
      });
    if ((r.operator === 'Exists' || r.operator === 'DoesNotExist') && n > 0)
      ctx.addIssue({ code: 'custom', path: ['values'], message: `must be empty for operator ${r.operator}` });
  });

/** A Kubernetes `LabelSelector` (`matchLabels` AND `matchExpressions`). */
export const labelSelectorSchema = z.strictObject({
  matchLabels: z.record(labelKey, labelValue).optional(),
  matchExpressions: z.array(requirement).optional(),
});

function cidrField() {
  return z
    .string()
    .refine((s) => tryParsePrefix(s) !== undefined && s.includes('/'), 'must be a CIDR such as 10.0.0.0/8');
}

const cidrSet = (unsupported: string[]) =>
  z
    .strictObject({
      cidr: cidrField(),
      except: z.array(cidrField()).optional(),
      ...unsupportedFields(unsupported),
    })
    .superRefine((b, ctx) => {
      const outer = tryParsePrefix(b.cidr);
      if (outer === undefined) return;
      (b.except ?? []).forEach((e, i) => {
        const inner = tryParsePrefix(e);
        if (inner !== undefined && (!prefixContains(outer, inner) || inner.length === outer.length))
          ctx.addIssue({
            code: 'custom',
            path: ['except', i],
            message: `must be a strict subnet of ${b.cidr}`,
          });
      });
    });

function unsupportedFields(names: string[]) {
  return Object.fromEntries(
    names.map((n) => [
      n,
      z
        .unknown()
        .refine((v) => v === undefined, `is not supported by @datapath/policy`)
        .optional(),
    ]),
  );
}

const numericPort = z
  .number()
  .int()
  .min(1, 'must be between 1 and 65535')
  .max(65535, 'must be between 1 and 65535');
const portName = z
  .string()
  .max(15, 'a port name must be at most 15 characters')
  .regex(PORT_NAME, 'a port name must be lowercase alphanumerics and dashes')
  .refine((s) => /[a-z]/.test(s), 'a port name must contain a letter');

const knpPort = z
  .strictObject({
    protocol: z.enum(['TCP', 'UDP', 'SCTP']).optional(),
    port: z.union([numericPort, portName]).optional(),
    endPort: numericPort.optional(),
  })
  .superRefine((p, ctx) => {
    if (p.endPort === undefined) return;
    if (typeof p.port !== 'number')
      ctx.addIssue({ code: 'custom', path: ['endPort'], message: 'requires a numeric port' });
    else if (p.endPort < p.port)
      ctx.addIssue({ code: 'custom', path: ['endPort'], message: 'must be ≥ port' });
  });

const knpPeer = z
  .strictObject({
    podSelector: labelSelectorSchema.optional(),
    namespaceSelector: labelSelectorSchema.optional(),
    ipBlock: cidrSet([]).optional(),
  })
  .superRefine((p, ctx) => {
    if (p.ipBlock !== undefined && (p.podSelector !== undefined || p.namespaceSelector !== undefined))
      ctx.addIssue({
        code: 'custom',
        path: ['ipBlock'],
        message: 'may not be combined with podSelector or namespaceSelector',
      });
    if (p.ipBlock === undefined && p.podSelector === undefined && p.namespaceSelector === undefined)
      ctx.addIssue({
        code: 'custom',
        path: [],
        message: 'must specify podSelector, namespaceSelector or ipBlock',
      });
  });

const metadata = z.looseObject({
  name: z.string().min(1, 'must be non-empty'),
  namespace: z.string().min(1, 'must be non-empty').optional(),
});

/** Schema of a `networking.k8s.io/v1` NetworkPolicy (structure and semantic checks, no defaulting). */
export const networkPolicySchema = z.looseObject({
  apiVersion: z.literal('networking.k8s.io/v1').optional(),
  kind: z.literal('NetworkPolicy'),
  metadata,
  spec: z.strictObject({
    podSelector: labelSelectorSchema,
    policyTypes: z.array(z.enum(['Ingress', 'Egress'])).optional(),
    ingress: z
      .array(z.strictObject({ from: z.array(knpPeer).optional(), ports: z.array(knpPort).optional() }))
      .optional(),
    egress: z
      .array(z.strictObject({ to: z.array(knpPeer).optional(), ports: z.array(knpPort).optional() }))
      .optional(),
  }),
});

const ENTITIES: readonly [Entity, ...Entity[]] = [
  'all',
  'world',
  'world-ipv4',
  'world-ipv6',
  'host',
  'remote-node',
  'cluster',
  'kube-apiserver',
  'health',
  'init',
  'unmanaged',
  'ingress',
  'none',
];

const cnpPort = z
  .strictObject({
    port: z.union([z.number().int().min(0).max(65535), z.string()]),
    endPort: numericPort.optional(),
    protocol: z.enum(['TCP', 'UDP', 'SCTP', 'ANY']).optional(),
  })
  .superRefine((p, ctx) => {
    const text = String(p.port);
    const numeric = /^\d+$/.test(text);
    if (numeric && Number(text) > 65535)
      ctx.addIssue({ code: 'custom', path: ['port'], message: 'must be between 0 and 65535' });
    if (!numeric) {
      const r = portName.safeParse(text);
      if (!r.success) ctx.addIssue({ code: 'custom', path: ['port'], message: r.error.issues[0]!.message });
    }
    if (p.endPort !== undefined) {
      if (!numeric || Number(text) === 0)
        ctx.addIssue({ code: 'custom', path: ['endPort'], message: 'requires a numeric, non-zero port' });
      else if (p.endPort < Number(text))
        ctx.addIssue({ code: 'custom', path: ['endPort'], message: 'must be ≥ port' });
    }
  });

const portRule = z.strictObject({
  ports: z.array(cnpPort).optional(),
  ...unsupportedFields(['rules', 'listener', 'originatingTLS', 'terminatingTLS', 'serverNames']),
});

const UNSUPPORTED_L3_IN = ['fromRequires', 'fromNodes', 'fromGroups', 'icmps', 'authentication'];
const UNSUPPORTED_L3_OUT = [
  'toRequires',
  'toNodes',
  'toGroups',
  'icmps',
  'authentication',
  'toServices',
  'toFQDNs',
];

const cnpIngress = () =>
  z.strictObject({
    fromEndpoints: z.array(labelSelectorSchema).optional(),
    fromCIDR: z.array(cidrField()).optional(),
    fromCIDRSet: z.array(cidrSet(['cidrGroupRef', 'cidrGroupSelector'])).optional(),
    fromEntities: z.array(z.enum(ENTITIES)).optional(),
    toPorts: z.array(portRule).optional(),
    ...unsupportedFields(UNSUPPORTED_L3_IN),
  });

const cnpEgress = () =>
  z.strictObject({
    toEndpoints: z.array(labelSelectorSchema).optional(),
    toCIDR: z.array(cidrField()).optional(),
    toCIDRSet: z.array(cidrSet(['cidrGroupRef', 'cidrGroupSelector'])).optional(),
    toEntities: z.array(z.enum(ENTITIES)).optional(),
    toPorts: z.array(portRule).optional(),
    ...unsupportedFields(UNSUPPORTED_L3_OUT),
  });

const cnpRule = z
  .strictObject({
    endpointSelector: labelSelectorSchema.optional(),
    ingress: z.array(cnpIngress()).optional(),
    ingressDeny: z.array(cnpIngress()).optional(),
    egress: z.array(cnpEgress()).optional(),
    egressDeny: z.array(cnpEgress()).optional(),
    enableDefaultDeny: z
      .strictObject({ ingress: z.boolean().optional(), egress: z.boolean().optional() })
      .optional(),
    labels: z.array(z.unknown()).optional(),
    description: z.string().optional(),
    ...unsupportedFields(['nodeSelector']),
  })
  .superRefine((r, ctx) => {
    if (r.endpointSelector === undefined)
      ctx.addIssue({ code: 'custom', path: ['endpointSelector'], message: 'is required' });
  });

const cnpBase = {
  apiVersion: z.literal('cilium.io/v2').optional(),
  metadata,
  spec: cnpRule.optional(),
  specs: z.array(cnpRule).optional(),
};

const needsSpec = (p: { spec?: unknown; specs?: unknown[] | undefined }, ctx: z.RefinementCtx) => {
  if (p.spec === undefined && (p.specs === undefined || p.specs.length === 0))
    ctx.addIssue({ code: 'custom', path: ['spec'], message: 'spec or specs is required' });
};

/** Schema of a `cilium.io/v2` CiliumNetworkPolicy. */
export const ciliumNetworkPolicySchema = z
  .looseObject({ ...cnpBase, kind: z.literal('CiliumNetworkPolicy') })
  .superRefine(needsSpec);

/** Schema of a `cilium.io/v2` CiliumClusterwideNetworkPolicy. */
export const ciliumClusterwideNetworkPolicySchema = z
  .looseObject({ ...cnpBase, kind: z.literal('CiliumClusterwideNetworkPolicy') })
  .superRefine(needsSpec);

/** Schema by kind. */
export const SCHEMAS = {
  NetworkPolicy: networkPolicySchema,
  CiliumNetworkPolicy: ciliumNetworkPolicySchema,
  CiliumClusterwideNetworkPolicy: ciliumClusterwideNetworkPolicySchema,
} as const;
