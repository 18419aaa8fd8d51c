export type { EncodedChange, EncodedEntry } from './codec.js';
export {
  decodeIpcacheKey,
  decodeIpcacheValue,
  decodePolicyKey,
  decodePolicyValue,
  encodeChanges,
  encodeIpcache,
  encodeIpcacheKey,
  encodeIpcacheValue,
  encodePolicyKey,
  encodePolicyMap,
  encodePolicyValue,
  IPCACHE_KEY_SIZE,
  IPCACHE_VALUE_SIZE,
  POLICY_KEY_SIZE,
  POLICY_VALUE_SIZE,
} from './codec.js';
export { PolicyEngine } from './engine.js';
export type {
  ClusterInput,
  EndpointState,
  EnforcementMode,
  EngineOptions,
  IpcacheChange,
  IpcacheValue,
  LoadOptions,
  MapChange,
  NamespaceSpec,
  PodPort,
  PodSpec,
  PolicyMapChange,
  PolicyState,
} from './engine-types.js';
export { IPCACHE_FLAG_HOST, IPCACHE_FLAG_LOCAL_ENDPOINT } from './engine-types.js';
export type { PolicyErrorCode, PolicyErrorReason, PolicyProblem } from './errors.js';
export { PolicyError } from './errors.js';
export type { IdentityAllocator, IdentityInfo, IdentityScope, NamedPort, ReservedName } from './identity.js';
export { LocalIdentityAllocator, ReservedIdentity } from './identity.js';
export type { Direction, LookupResult, MapEntry, MapState, PolicyKey, PolicyValue } from './mapstate.js';
export { keyString, policyLookup } from './mapstate.js';
export { parsePolicies, validatePolicies } from './parse.js';
export type {
  CompiledScenario,
  ProbeResult,
  Scenario,
  ScenarioInput,
  ScenarioPod,
  ScenarioPodInput,
  ScenarioProbe,
  ScenarioResult,
} from './scenario.js';
export {
  compileScenario,
  evaluateScenario,
  explainScenarioProbe,
  parseScenario,
  validateScenario,
} from './scenario.js';
export type {
  CiliumCidrSet,
  CiliumClusterwideNetworkPolicy,
  CiliumEgressRule,
  CiliumIngressRule,
  CiliumNetworkPolicy,
  CiliumPort,
  CiliumPortRule,
  CiliumRule,
  Entity,
  LabelSelector,
  LabelSelectorRequirement,
  NetworkPolicy,
  NetworkPolicyEgressRule,
  NetworkPolicyIngressRule,
  NetworkPolicyPeer,
  NetworkPolicyPort,
  ObjectMeta,
  PolicyKind,
  PolicyObject,
} from './types.js';
export type {
  DirectionExplanation,
  DirectionVerdict,
  Explanation,
  Flow,
  FlowProtocol,
  IpcacheHit,
  RuleTrace,
  VerdictResult,
} from './verdict.js';
export { explain, formatExplanation, ipcacheLookup, verdict } from './verdict.js';
