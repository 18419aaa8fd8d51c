import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { uniqueName } from '@datapath/testutils';
import { type Agent, startAgent } from './agent-client.js';

/** The directory of the test BPF sources (counter.bpf.c, foreign.bpf.c, …). */
export const bpfDir = fileURLToPath(new URL('../bpf/', import.meta.url));

/** What the in-namespace agent's `load` call returns. */
export interface LoadResult {
  coll: string;
  programs: Record<string, number>;
}

/** What the agent's attach calls return (the fields the tests read). */
export interface Attached {
  link: string;
  info: {
    kind: string;
    linkId?: number;
    programId: number;
    ifindex?: number;
    handle?: number;
    priority?: number;
  };
}

/** Runs `fn` with an agent process inside `netns`, stopping it afterwards even on failure. */
export async function withAgent<R>(netns: string, fn: (agent: Agent) => Promise<R>): Promise<R> {
  const agent = await startAgent(netns);
  try {
    return await fn(agent);
  } finally {
    await agent.stop();
  }
}

/** A bpffs directory for one test (named with the run prefix), removed afterwards even on failure. */
export async function withPinDir<R>(fn: (dir: string) => Promise<R>): Promise<R> {
  const dir = join('/sys/fs/bpf', uniqueName());
  try {
    return await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
