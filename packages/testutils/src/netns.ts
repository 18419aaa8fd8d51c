import { existsSync } from 'node:fs';
import { run } from './exec.js';
import { uniqueName } from './names.js';

/** A throwaway named network namespace, visible to `ip netns`. */
export interface TestNetns {
  /** Its name under /run/netns. */
  readonly name: string;
  /** Its nsfs path, `/run/netns/<name>`. */
  readonly path: string;
}

/** Creates a named network namespace with loopback up; pair it with {@link deleteNetns}. */
export function createNetns(name = uniqueName()): TestNetns {
  run('ip', ['netns', 'add', name]);
  try {
    run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  } catch (err) {
    deleteNetns(name);
    throw err;
  }
  return { name, path: `/run/netns/${name}` };
}

/** Deletes a named network namespace; a missing one is fine. */
export function deleteNetns(name: string): void {
  if (existsSync(`/run/netns/${name}`)) run('ip', ['netns', 'del', name]);
}

/**
 * Runs `fn` with `count` fresh network namespaces and deletes them afterwards, even when `fn` throws.
 *
 * ```ts
 * await withNetns(async (ns) => { … }); // one namespace
 * await withNetns(3, async (a, b, c) => { … });
 * ```
 */
export async function withNetns<R>(fn: (ns: TestNetns) => R | Promise<R>): Promise<R>;
export async function withNetns<R>(count: number, fn: (...ns: TestNetns[]) => R | Promise<R>): Promise<R>;
export async function withNetns<R>(
  a: number | ((ns: TestNetns) => R | Promise<R>),
  b?: (...ns: TestNetns[]) => R | Promise<R>,
): Promise<R> {
  const count = typeof a === 'number' ? a : 1;
  const fn = (typeof a === 'number' ? b : a) as (...ns: TestNetns[]) => R | Promise<R>;
  const made: TestNetns[] = [];
  let outcome: { ok: true; value: R } | { ok: false; error: unknown };
  try {
    for (let i = 0; i < count; i++) made.push(createNetns());
    outcome = { ok: true, value: await fn(...made) };
  } catch (error) {
    outcome = { ok: false, error };
  }
  const errors: unknown[] = [];
  for (const ns of made.reverse()) {
    try {
      deleteNetns(ns.name);
    } catch (err) {
      errors.push(err);
    }
  }
  if (!outcome.ok) throw outcome.error;
  if (errors.length > 0) throw new AggregateError(errors, 'withNetns: could not delete every namespace');
  return outcome.value;
}
