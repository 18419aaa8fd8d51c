import { DatapathError, type ErrorCode, isDatapathError } from '@datapath/errors';

/**
 * What the agent's own failures are, in its own terms (`err.reason` of an {@link AgentError}), each
 * with one SDK-wide `err.code`: `InvalidScenario` → `InvalidArgument`; `NotRunning`, `AlreadyRunning`
 * → `InvalidState`; `IpcacheConflict` → `AlreadyExists`; `ListenerFailed`, `ProbeFailed` → `Io`; `DatapathFailed` → the code of the SDK
 * error it wraps (`Unknown` otherwise). The codes `InvalidArgument`, `NotFound` and `NotSupported` are
 * used as they are, without a reason.
 *
 * In a cluster: `ClusterConflict` (a node name, underlay address or pod CIDR another node has) →
 * `AlreadyExists`; `StoreUnavailable` (etcd does not answer) → `Unavailable`. `ServiceConflict` (a service
 * that exists already, or a frontend another service has) → `AlreadyExists`.
 */
export type AgentErrorCode =
  | 'InvalidScenario'
  | 'InvalidArgument'
  | 'ClusterConflict'
  | 'StoreUnavailable'
  | 'NotRunning'
  | 'AlreadyRunning'
  | 'NotFound'
  | 'ListenerFailed'
  | 'ProbeFailed'
  | 'DatapathFailed'
  | 'NotSupported'
  | 'IpcacheConflict'
  | 'ServiceConflict';

const CODE_OF: Readonly<Record<AgentErrorCode, ErrorCode | undefined>> = {
  InvalidScenario: 'InvalidArgument',
  InvalidArgument: 'InvalidArgument',
  ClusterConflict: 'AlreadyExists',
  StoreUnavailable: 'Unavailable',
  NotRunning: 'InvalidState',
  AlreadyRunning: 'InvalidState',
  NotFound: 'NotFound',
  ListenerFailed: 'Io',
  ProbeFailed: 'Io',
  DatapathFailed: undefined,
  NotSupported: 'NotSupported',
  IpcacheConflict: 'AlreadyExists',
  ServiceConflict: 'AlreadyExists',
};

/** The one error type the agent throws itself (a `DatapathError`); SDK errors travel as `cause`. */
export class AgentError extends DatapathError {
  /** Always `'AgentError'`. */
  override readonly name: string = 'AgentError';

  constructor(why: AgentErrorCode, message: string, options?: { cause?: unknown }) {
    const cause = options?.cause;
    const code = CODE_OF[why] ?? (isDatapathError(cause) ? cause.code : 'Unknown');
    super(code, message, { reason: why === code ? undefined : why, cause });
  }
}
