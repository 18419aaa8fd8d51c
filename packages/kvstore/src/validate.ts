import { invalidArgument } from './errors.js';
import type { KvCompare, KvOp } from './types.js';

/** Rejects an empty or non-string key before any request is made. */
export function checkKey(op: string, key: unknown): asserts key is string {
  if (typeof key !== 'string' || key.length === 0)
    throw invalidArgument(op, 'key must be a non-empty string');
}

/** Rejects a non-string prefix (the empty prefix is allowed and means "every key"). */
export function checkPrefix(op: string, prefix: unknown): asserts prefix is string {
  if (typeof prefix !== 'string') throw invalidArgument(op, 'prefix must be a string');
}

/** Rejects a lease TTL that etcd would refuse (whole seconds, at least 1). */
export function checkTtl(op: string, ttl: unknown): asserts ttl is number {
  if (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < 1 || ttl > 9_000_000_000) {
    throw invalidArgument(op, `lease TTL must be a whole number of seconds ≥ 1, got ${String(ttl)}`);
  }
}

const OPS = new Set(['==', '!=', '<', '>']);
const TARGETS = new Set(['value', 'version', 'createRevision', 'modRevision']);

/** Validates the compares and ops of a transaction. */
export function checkTxn(
  compare: readonly KvCompare[],
  success: readonly KvOp[],
  failure: readonly KvOp[],
): void {
  for (const c of compare) {
    checkKey('txn', c.key);
    if (!OPS.has(c.op)) throw invalidArgument('txn', `unknown compare operator ${String(c.op)}`, c.key);
    if (!TARGETS.has(c.target))
      throw invalidArgument('txn', `unknown compare target ${String(c.target)}`, c.key);
    if (c.target === 'value' ? typeof c.value !== 'string' : !Number.isSafeInteger(c.value)) {
      throw invalidArgument('txn', `bad compare value for target ${c.target}`, c.key);
    }
  }
  for (const o of [...success, ...failure]) {
    if (o.type === 'deletePrefix') checkPrefix('txn', o.prefix);
    else if (o.type === 'put' || o.type === 'delete' || o.type === 'get') checkKey('txn', o.key);
    else throw invalidArgument('txn', `unknown op type ${String((o as { type: unknown }).type)}`);
    if (o.type === 'put' && typeof o.value !== 'string')
      throw invalidArgument('txn', 'value must be a string', o.key);
  }
}
