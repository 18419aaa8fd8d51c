import { DatapathError } from '@datapath/errors';

/** One clang diagnostic. */
export interface Diagnostic {
  /** Source file as clang names it. */
  file: string;
  /** 1-based line. */
  line: number;
  /** 1-based column. */
  column: number;
  /** `error`, `warning`, `fatal error` or `note`. */
  severity: string;
  /** The diagnostic text. */
  message: string;
}

/**
 * Why a compile failed (`err.reason` of a {@link CompileError}): `CompileFailed` (clang rejected the
 * source: code `InvalidArgument`), `CompilerNotFound` (no clang: code `NotFound`); a bad option is code
 * `InvalidArgument` with no reason.
 */
export type CompileErrorReason = 'CompileFailed' | 'CompilerNotFound';

/**
 * What the {@link CompileError} constructor takes first: a reason, or `InvalidArgument` for a bad option.
 *
 * @deprecated `err.code` is now the SDK-wide `ErrorCode` of `@datapath/errors`; match `err.reason`
 * ({@link CompileErrorReason}).
 */
export type CompileErrorCode = CompileErrorReason | 'InvalidArgument';

/**
 * A compile that did not produce an object: clang's diagnostics parsed into {@link Diagnostic}s, with the
 * complete stderr kept on `stderr`. A `DatapathError`: `code` `InvalidArgument` (the source or an option
 * is wrong) or `NotFound` (no compiler), `reason` {@link CompileErrorReason}.
 *
 * @example Printing clang's errors
 * ```ts
 * import { CompileError } from '@datapath/loader';
 * function report(e: unknown): void {
 *   if (e instanceof CompileError && e.reason === 'CompileFailed')
 *     for (const d of e.diagnostics) console.error(`${d.file}:${d.line}: ${d.message}`);
 * }
 * ```
 */
export class CompileError extends DatapathError {
  /** Always `'CompileError'`. */
  override readonly name: string = 'CompileError';
  /** Why the compile failed, when it was not a bad option. */
  declare readonly reason: CompileErrorReason | undefined;
  /** Parsed diagnostics (errors and warnings), in clang's order. */
  readonly diagnostics: readonly Diagnostic[];
  /** clang's complete stderr (capped at 1 MiB). */
  readonly stderr: string;

  constructor(
    why: CompileErrorCode,
    message: string,
    options: { diagnostics?: Diagnostic[]; stderr?: string; cause?: unknown } = {},
  ) {
    super(why === 'CompilerNotFound' ? 'NotFound' : 'InvalidArgument', message, {
      op: 'compile',
      reason: why === 'InvalidArgument' ? undefined : why,
      target: why === 'CompilerNotFound' ? 'clang' : undefined,
      cause: options.cause,
    });
    this.diagnostics = options.diagnostics ?? [];
    this.stderr = options.stderr ?? '';
  }
}

const DIAG = /^(.+?):(\d+):(\d+): (error|warning|fatal error|note): (.*)$/;

/** Parses clang's `file:line:col: severity: message` lines. */
export function parseDiagnostics(stderr: string): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const line of stderr.split('\n')) {
    const m = DIAG.exec(line);
    if (m === null) continue;
    out.push({ file: m[1]!, line: Number(m[2]), column: Number(m[3]), severity: m[4]!, message: m[5]! });
  }
  return out;
}
