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
    super(`${message}${summarizeProblems(problems)}`, cause === undefined ? undefined : { cause });
    this.code = code;
    this.problems = problems;
  }
}

/** How many problems the message of a {@link PolicyError} lists (all of them stay on `problems`). */
export const MESSAGE_PROBLEMS = 20;

/** The message lines of the first {@link MESSAGE_PROBLEMS} problems, and how many more there are. */
function summarizeProblems(problems: readonly PolicyProblem[]): string {
  if (problems.length === 0) return '';
  const shown = problems.slice(0, MESSAGE_PROBLEMS).map((p) => `  ${p.path}: ${clip(p.message)}`);
  const rest = problems.length - shown.length;
  if (rest > 0)
    shown.push(`  … and ${rest} more problem${rest === 1 ? '' : 's'} (all of them on error.problems)`);
  return `\n${shown.join('\n')}`;
}

/** One problem's message, at most 300 characters. */
function clip(message: string): string {
  return message.length <= 300 ? message : `${message.slice(0, 297)}…`;
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
