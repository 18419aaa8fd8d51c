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

/** Failure codes of {@link CompileError}. */
export type CompileErrorCode = 'CompileFailed' | 'CompilerNotFound' | 'InvalidArgument';

/**
 * A compile that did not produce an object: clang's diagnostics parsed into {@link Diagnostic}s, with the
 * complete stderr kept on `stderr`.
 */
export class CompileError extends Error {
  /** Always `'CompileError'`. */
  override readonly name = 'CompileError';
  /** Machine-readable failure code. */
  readonly code: CompileErrorCode;
  /** Parsed diagnostics (errors and warnings), in clang's order. */
  readonly diagnostics: readonly Diagnostic[];
  /** clang's complete stderr (capped at 1 MiB). */
  readonly stderr: string;

  constructor(
    code: CompileErrorCode,
    message: string,
    options: { diagnostics?: Diagnostic[]; stderr?: string; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
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
