/** Closed set of failure codes of the reference agent. */
export type AgentErrorCode =
  | 'InvalidScenario'
  | 'InvalidArgument'
  | 'NotRunning'
  | 'AlreadyRunning'
  | 'NotFound'
  | 'ListenerFailed'
  | 'ProbeFailed'
  | 'DatapathFailed'
  | 'NotSupported';

/** The one error type the agent throws itself; SDK errors travel as `cause`. */
export class AgentError extends Error {
  /** Always `'AgentError'`. */
  override readonly name = 'AgentError';
  /** Machine-readable failure code. */
  readonly code: AgentErrorCode;

  constructor(code: AgentErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
  }
}
