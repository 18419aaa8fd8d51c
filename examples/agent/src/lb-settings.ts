/**
 * How the agent's services pick backends, pure: the selection (`random` or `maglev`) and the Maglev hash seed,
 * from flags (`--lb-selection`, `--lb-hash-seed`) or options, checked against what a running agent was started
 * with, and the flags a cluster passes to every node. With `maglev`, a flow picks the same backend on every
 * node whose seed (and backends) are the same: the seed feeds both the Maglev tables (`ServiceTable`) and the
 * programs' flow hash (`lb_hash_seed` of the socket LB, the NodePort programs and datapath.c's from_world).
 * Cilium's equivalents: `--bpf-lb-algorithm` and `--bpf-lb-maglev-hash-seed`.
 */
import type { Selection } from '@datapath/lb';
import { AgentError } from './errors.js';

/** The agent's load-balancing settings. */
export interface LbSettings {
  /** How a new flow picks a backend: uniformly at random (default) or through the service's Maglev table. */
  selection: Selection;
  /** Seed of the Maglev tables and of the flow hash, an unsigned 32-bit integer: one value per cluster. */
  hashSeed: number;
}

/**
 * The default seed: a fixed value (not random per start), so agents started without `--lb-hash-seed` agree
 * with each other and with `@datapath/lb`'s own default.
 */
export const DEFAULT_LB_HASH_SEED = 0;

/** The defaults: random selection, {@link DEFAULT_LB_HASH_SEED}. */
export const DEFAULT_LB_SETTINGS: Readonly<LbSettings> = {
  selection: 'random',
  hashSeed: DEFAULT_LB_HASH_SEED,
};

/**
 * The settings a command line gives (`--lb-selection random|maglev`, `--lb-hash-seed <u32>`, decimal or
 * `0x` hex); what it does not give stays absent.
 * @throws AgentError `InvalidArgument`.
 */
export function lbSettingsFromFlags(v: {
  'lb-selection'?: string;
  'lb-hash-seed'?: string;
}): Partial<LbSettings> {
  const out: Partial<LbSettings> = {};
  const sel = v['lb-selection'];
  if (sel !== undefined) {
    if (sel !== 'random' && sel !== 'maglev')
      throw new AgentError('InvalidArgument', `--lb-selection must be random or maglev, got ${sel}`);
    out.selection = sel;
  }
  const seed = v['lb-hash-seed'];
  if (seed !== undefined) {
    const n = /^(0x[0-9a-f]{1,8}|[0-9]{1,10})$/i.test(seed) ? Number(seed) : Number.NaN;
    if (!(Number.isInteger(n) && n >= 0 && n <= 0xffff_ffff))
      throw new AgentError(
        'InvalidArgument',
        `--lb-hash-seed must be an unsigned 32-bit integer (decimal or 0x hex), got ${seed}`,
      );
    out.hashSeed = n;
  }
  return out;
}

/**
 * The settings an agent runs with: what it was started with (`saved`, from its state) when it has them, else
 * the given ones over the defaults. A given value that differs from a running agent's is refused: the seed
 * and selection are fixed for the agent's life (every map and program of it agrees on them).
 * @throws AgentError `InvalidArgument` (a bad value, or one that differs from `saved`).
 */
export function resolveLbSettings(given: Partial<LbSettings>, saved?: LbSettings): LbSettings {
  if (given.selection !== undefined && given.selection !== 'random' && given.selection !== 'maglev')
    throw new AgentError(
      'InvalidArgument',
      `lb selection must be random or maglev, got ${String(given.selection)}`,
    );
  const seed = given.hashSeed;
  if (seed !== undefined && !(Number.isInteger(seed) && seed >= 0 && seed <= 0xffff_ffff))
    throw new AgentError(
      'InvalidArgument',
      `lb hash seed must be an unsigned 32-bit integer, got ${String(seed)}`,
    );
  if (saved === undefined) return { ...DEFAULT_LB_SETTINGS, ...given };
  for (const k of ['selection', 'hashSeed'] as const)
    if (given[k] !== undefined && given[k] !== saved[k])
      throw new AgentError(
        'InvalidArgument',
        `the agent runs with lb ${k} ${String(saved[k])}, not ${String(given[k])}: it is fixed for the agent's life (agent down, then start again)`,
      );
  return { ...saved };
}

/** The flags that give `s` to another agent (a cluster node); empty for what is absent. */
export function lbSettingsFlags(s: Partial<LbSettings>): string[] {
  return [
    ...(s.selection === undefined ? [] : ['--lb-selection', s.selection]),
    ...(s.hashSeed === undefined ? [] : ['--lb-hash-seed', String(s.hashSeed)]),
  ];
}
