/** Closed set of failure codes of `@datapath/policy`. */
export type PolicyErrorCode =
  | 'InvalidPolicy'
  | 'InvalidScenario'
  | 'InvalidArgument'
  | 'NotFound'
  | 'Exhausted';

/** One problem found while validating input: where (a dotted path) and what. */
export interface PolicyProblem {
  /** Path inside the document, e.g. `spec.ingress[0].ports[1].endPort`; prefixed with `[n].` for the n-th document of a stream. */
  path: string;
  /** What is wrong, e.g. `must be ≥ port`. */
  message: string;
}

/**
 * The one error type thrown by `@datapath/policy`.
 *
 * Validation failures carry every problem found (never only the first), and nothing is loaded
 * when one is thrown.
 */
export class PolicyError extends Error {
  /** Always `'PolicyError'`. */
  override readonly name = 'PolicyError';
  /** Machine-readable failure code. */
  readonly code: PolicyErrorCode;
  /** Every problem found, in document order (empty for non-validation errors). */
  readonly problems: readonly PolicyProblem[];

  constructor(
    code: PolicyErrorCode,
    message: string,
    problems: readonly PolicyProblem[] = [],
    cause?: unknown,
  ) {
    const detail =
      problems.length === 0 ? '' : `\n${problems.map((p) => `  ${p.path}: ${p.message}`).join('\n')}`;
    super(`${message}${detail}`, cause === undefined ? undefined : { cause });
    this.code = code;
    this.problems = problems;
  }
}

/** Renders a zod-style path (`['spec', 'ingress', 0]`) as `spec.ingress[0]`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out === '' ? String(p) : `.${String(p)}`;
  }
  return out === '' ? '(root)' : out;
}
