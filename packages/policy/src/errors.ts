import { DatapathError, type ErrorCode } from '@datapath/errors';

/**
 * Domain detail of a {@link PolicyError} (`err.reason`): the input that failed validation. Both are code
 * `InvalidArgument`.
 */
export type PolicyErrorReason = 'InvalidPolicy' | 'InvalidScenario';

/**
 * What the {@link PolicyError} constructor takes first: a validation reason (code `InvalidArgument`) or
 * one of the codes `InvalidArgument`, `NotFound`, `Exhausted`.
 *
 * @deprecated as the type of `err.code`: that is now the SDK-wide `ErrorCode` of `@datapath/errors`;
 * match validation failures on `err.reason` ({@link PolicyErrorReason}).
 */
export type PolicyErrorCode = PolicyErrorReason | 'InvalidArgument' | 'NotFound' | 'Exhausted';

/** One problem found while validating input: where (a dotted path) and what. */
export interface PolicyProblem {
  /** Path inside the document, e.g. `spec.ingress[0].ports[1].endPort`; prefixed with `[n].` for the n-th document of a stream. */
  path: string;
  /** What is wrong, e.g. `must be ≥ port`. */
  message: string;
}

/**
 * The one error type thrown by `@datapath/policy`: a `DatapathError` whose `code` is in the SDK-wide
 * set (`InvalidArgument`, `NotFound`, `Exhausted`), with `reason` `InvalidPolicy` or `InvalidScenario`
 * for validation failures.
 *
 * Validation failures carry every problem found (never only the first), and nothing is loaded
 * when one is thrown.
 *
 * @example Listing every problem of a policy document
 * ```ts
 * import { PolicyError, parsePolicies } from '@datapath/policy';
 * try {
 *   parsePolicies('kind: NetworkPolicy\nspec: 7\n');
 * } catch (e) {
 *   if (e instanceof PolicyError && e.reason === 'InvalidPolicy') for (const p of e.problems) console.log(p.path, p.message);
 * }
 * ```
 */
export class PolicyError extends DatapathError {
  /** Always `'PolicyError'`. */
  override readonly name: string = 'PolicyError';
  /** The input that failed validation, for validation failures. */
  declare readonly reason: PolicyErrorReason | undefined;
  /** Every problem found, in document order (empty for non-validation errors). */
  readonly problems: readonly PolicyProblem[];

  constructor(
    code: PolicyErrorCode,
    message: string,
    problems: readonly PolicyProblem[] = [],
    cause?: unknown,
  ) {
    const validation = code === 'InvalidPolicy' || code === 'InvalidScenario';
    const generic: ErrorCode = validation ? 'InvalidArgument' : code;
    super(generic, `${message}${summarizeProblems(problems)}`, {
      reason: validation ? code : undefined,
      cause,
    });
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
