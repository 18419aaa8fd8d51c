import { parseAllDocuments } from 'yaml';
import { formatPath, PolicyError, type PolicyProblem } from './errors.js';
import { SCHEMAS } from './schema.js';
import type { PolicyObject } from './types.js';

/** Validates one already-decoded object; returns the typed policy or the problems (paths prefixed with `prefix`). */
export function checkPolicy(obj: unknown, prefix = ''): { policy?: PolicyObject; problems: PolicyProblem[] } {
  const at = (p: string) => (prefix === '' ? p : p === '(root)' ? prefix : `${prefix}.${p}`);
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj))
    return { problems: [{ path: at('(root)'), message: 'must be an object' }] };
  const kind = (obj as { kind?: unknown }).kind;
  const schema = typeof kind === 'string' ? SCHEMAS[kind as keyof typeof SCHEMAS] : undefined;
  if (schema === undefined)
    return {
      problems: [
        {
          path: at('kind'),
          message: `must be NetworkPolicy, CiliumNetworkPolicy or CiliumClusterwideNetworkPolicy (got ${JSON.stringify(kind)})`,
        },
      ],
    };
  const r = schema.safeParse(obj);
  if (r.success) return { policy: r.data as unknown as PolicyObject, problems: [] };
  return { problems: r.error.issues.map((i) => ({ path: at(formatPath(i.path)), message: i.message })) };
}

/**
 * Validates decoded policy objects (a single object, an array, or a `kind: List` with `items`) and returns them typed.
 *
 * @throws {@link PolicyError} `InvalidPolicy` listing every problem with its path; nothing is returned then.
 * @example Validating a decoded object
 * ```ts
 * import { validatePolicies } from '@datapath/policy';
 * const [p] = validatePolicies({
 *   kind: 'NetworkPolicy',
 *   metadata: { name: 'deny-all', namespace: 'x' },
 *   spec: { podSelector: {} },
 * });
 * console.log(p?.kind); // 'NetworkPolicy'
 * ```
 */
export function validatePolicies(input: unknown): PolicyObject[] {
  const items = flatten(input, '');
  const out: PolicyObject[] = [];
  const problems: PolicyProblem[] = [];
  for (const { value, path } of items) {
    const r = checkPolicy(value, path);
    problems.push(...r.problems);
    if (r.policy) out.push(r.policy);
  }
  if (problems.length > 0) throw new PolicyError('InvalidPolicy', 'invalid policy', problems);
  return out;
}

function flatten(v: unknown, path: string): { value: unknown; path: string }[] {
  const join = (p: string, s: string) => (p === '' ? s : `${p}${s.startsWith('[') ? '' : '.'}${s}`);
  if (Array.isArray(v)) return v.flatMap((x, i) => flatten(x, join(path, `[${i}]`)));
  if (typeof v === 'object' && v !== null) {
    const o = v as { kind?: unknown; items?: unknown };
    if (typeof o.kind === 'string' && o.kind.endsWith('List') && Array.isArray(o.items))
      return o.items.flatMap((x, i) => flatten(x, join(path, `items[${i}]`)));
  }
  return [{ value: v, path }];
}

/**
 * Parses policies from YAML or JSON text: one document, multi-document YAML (`---`), JSON arrays or `kind: List`.
 *
 * Equivalent to: `kubectl apply --dry-run=client -f FILE` for the policy kinds.
 *
 * @throws {@link PolicyError} `InvalidPolicy` listing every problem (YAML syntax errors included) with its path,
 * e.g. `spec.ingress[0].ports[1].endPort: must be ≥ port`; multi-document input prefixes paths with `[n]`.
 * @example Parsing a NetworkPolicy from YAML
 * ```ts
 * import { parsePolicies } from '@datapath/policy';
 * const policies = parsePolicies(`
 * apiVersion: networking.k8s.io/v1
 * kind: NetworkPolicy
 * metadata: { name: deny-all, namespace: x }
 * spec: { podSelector: {} }
 * `);
 * console.log(policies.length); // 1
 * ```
 */
export function parsePolicies(text: string): PolicyObject[] {
  const docs = parseAllDocuments(text);
  const list = Array.isArray(docs) ? docs : [docs];
  const problems: PolicyProblem[] = [];
  const values: unknown[] = [];
  list.forEach((d, i) => {
    for (const e of d.errors)
      problems.push({
        path: list.length > 1 ? `[${i}]` : '(root)',
        message: `YAML: ${e.message.split('\n')[0]}`,
      });
    const js: unknown = d.toJS();
    if (js !== null && js !== undefined) values.push(js);
  });
  if (problems.length > 0) throw new PolicyError('InvalidPolicy', 'invalid policy document', problems);
  return validatePolicies(values.length === 1 ? values[0] : values);
}
