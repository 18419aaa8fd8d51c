// Test helper: starts test/helpers/agent.ts inside a network namespace and calls it.
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const pkgDir = fileURLToPath(new URL('../..', import.meta.url));

/** An error reported by the agent, with the library error's name and code. */
export class AgentError extends Error {
  constructor(
    message: string,
    readonly errorName: string,
    readonly code: string | undefined,
  ) {
    super(message);
  }
}

/** A loader command server running in one network namespace. */
export interface Agent {
  call<T = unknown>(op: string, args?: Record<string, unknown>): Promise<T>;
  stop(): Promise<void>;
}

function decode(text: string): unknown {
  return JSON.parse(text, (_k, v) =>
    typeof v === 'string' && /^\d+n$/.test(v) ? BigInt(v.slice(0, -1)) : v,
  );
}

/** Starts an agent in `/run/netns/<netns>` (nsenter --net only: bpffs and cgroups stay visible). */
export async function startAgent(netns: string): Promise<Agent> {
  const child: ChildProcessWithoutNullStreams = spawn(
    'nsenter',
    [`--net=/run/netns/${netns}`, process.execPath, '--import', 'tsx', 'test/helpers/agent.ts'],
    { cwd: pkgDir, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env } },
  );
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += String(d);
  });
  const waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();
  let nextId = 1;
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const ready = new Promise<void>((resolve, reject) => {
    waiting.set(0, { resolve: () => resolve(), reject });
    child.on('exit', (code) => {
      for (const w of waiting.values()) w.reject(new Error(`agent exited ${code}: ${stderr}`));
      waiting.clear();
    });
  });
  createInterface({ input: child.stdout }).on('line', (line) => {
    const msg = decode(line) as {
      id: number;
      ok: boolean;
      result?: unknown;
      error?: { name: string; code?: string; message: string };
    };
    const w = waiting.get(msg.id);
    if (w === undefined) return;
    waiting.delete(msg.id);
    if (msg.ok) w.resolve(msg.result);
    else w.reject(new AgentError(msg.error!.message, msg.error!.name, msg.error!.code));
  });
  await ready;
  return {
    call<T>(op: string, args: Record<string, unknown> = {}) {
      const id = nextId++;
      return new Promise<T>((resolve, reject) => {
        waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
        child.stdin.write(
          `${JSON.stringify({ id, op, args }, (_k, v) => (typeof v === 'bigint' ? Number(v) : v))}\n`,
        );
      });
    },
    async stop() {
      child.stdin.end();
      await exited;
    },
  };
}
