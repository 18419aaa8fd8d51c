import { parseAllDocuments } from 'yaml';
import { formatPath, PolicyError, type PolicyProblem } from './errors.js';
import { SCHEMAS } from './schema.js';
import type { PolicyObject } from './types.js';

/** Deepest nesting of objects and arrays accepted in one policy (real policies nest about 8 levels). */
export const MAX_POLICY_DEPTH = 64;

/** Whether `v` nests objects or arrays more than `max` levels deep (iterative: any depth is safe to check). */
export function nestedDeeperThan(v: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[v, 0]];
  const seen = new Set<object>();
  while (stack.length > 0) {
    const [x, d] = stack.pop()!;
    if (typeof x !== 'object' || x === null || seen.has(x)) continue;
    if (d >= max) return true;
    seen.add(x);
    for (const c of Array.isArray(x) ? x : Object.values(x)) stack.push([c, d + 1]);
  }
  return false;
}

/** Validates one already-decoded object; returns the typed policy or the problems (paths prefixed with `prefix`). */
export function checkPolicy(obj: unknown, prefix = ''): { policy?: PolicyObject; problems: PolicyProblem[] } {
  const at = (p: string) => (prefix === '' ? p : p === '(root)' ? prefix : `${prefix}.${p}`);
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj))
    return { problems: [{ path: at('(root)'), message: 'must be an object' }] };
  if (nestedDeeperThan(obj, MAX_POLICY_DEPTH))
    return {
      problems: [{ path: at('(root)'), message: `nested more than ${MAX_POLICY_DEPTH} levels deep` }],
    };
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
  const problems: PolicyProblem[] = [];
  const items = flatten(input, '', 0, problems);
  const out: PolicyObject[] = [];
  for (const { value, path } of items) {
    const r = checkPolicy(value, path);
    problems.push(...r.problems);
    if (r.policy) out.push(r.policy);
  }
  if (problems.length > 0) throw new PolicyError('InvalidPolicy', 'invalid policy', problems);
  return out;
}

function flatten(
  v: unknown,
  path: string,
  depth: number,
  problems: PolicyProblem[],
): { value: unknown; path: string }[] {
  const join = (p: string, s: string) => (p === '' ? s : `${p}${s.startsWith('[') ? '' : '.'}${s}`);
  const nested = Array.isArray(v)
    ? v.map((x, i) => [x, join(path, `[${i}]`)] as const)
    : typeof v === 'object' &&
        v !== null &&
        typeof (v as { kind?: unknown }).kind === 'string' &&
        (v as { kind: string }).kind.endsWith('List') &&
        Array.isArray((v as { items?: unknown }).items)
      ? (v as { items: unknown[] }).items.map((x, i) => [x, join(path, `items[${i}]`)] as const)
      : undefined;
  if (nested === undefined) return [{ value: v, path }];
  if (depth >= MAX_POLICY_DEPTH) {
    problems.push({
      path: path === '' ? '(root)' : path,
      message: `lists nested more than ${MAX_POLICY_DEPTH} levels deep`,
    });
    return [];
  }
  return nested.flatMap(([x, p]) => flatten(x, p, depth + 1, problems));
}

/** A YAML library failure as a problem: unresolved aliases, alias bombs, nesting that exhausts the stack. */
function yamlProblem(err: unknown): string {
  const message = err instanceof Error ? err.message.split('\n')[0]! : String(err);
  if (err instanceof RangeError || /call stack|stack overflow/i.test(message))
    return 'YAML: nested too deeply to parse';
  if (/excessive alias count/i.test(message))
    return 'YAML: too many alias expansions (a billion-laughs style document is refused)';
  return `YAML: ${message}`;
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
  const values = parseYamlDocuments(text, 'InvalidPolicy');
  return validatePolicies(values.length === 1 ? values[0] : values);
}

/**
 * Decodes every YAML (or JSON) document of `text`, empty documents skipped.
 * @throws {@link PolicyError} with `code` listing every syntax problem, unresolved aliases, alias bombs and nesting
 * too deep to parse included.
 */
export function parseYamlDocuments(text: string, code: 'InvalidPolicy' | 'InvalidScenario'): unknown[] {
  const docs = parseAllDocuments(text);
  const list = Array.isArray(docs) ? docs : [docs];
  const problems: PolicyProblem[] = [];
  const values: unknown[] = [];
  list.forEach((d, i) => {
    const path = list.length > 1 ? `[${i}]` : '(root)';
    const messages = new Set(d.errors.map((e) => yamlProblem(e)));
    for (const message of messages) problems.push({ path, message });
    if (d.errors.length > 0) return;
    let js: unknown;
    try {
      js = d.toJS({ maxAliasCount: 100 });
    } catch (err) {
      // Unresolved aliases (ReferenceError), alias bombs, a stack exhausted by nesting (RangeError).
      problems.push({ path, message: yamlProblem(err) });
      return;
    }
    if (js !== null && js !== undefined) values.push(js);
  });
  if (problems.length > 0)
    throw new PolicyError(
      code,
      code === 'InvalidPolicy' ? 'invalid policy document' : 'invalid scenario document',
      problems,
    );
  return values;
}
