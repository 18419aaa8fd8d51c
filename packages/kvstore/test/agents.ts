// Test helper: spawns node-agent processes (tsx) and collects their JSON lines.
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const FIXTURE = fileURLToPath(new URL('./fixtures/node-agent.ts', import.meta.url));
const PKG = fileURLToPath(new URL('..', import.meta.url));

export interface Agent {
  readonly name: string;
  readonly proc: ChildProcess;
  readonly messages: Record<string, unknown>[];
  readonly stderr: () => string;
  waitFor(pred: (m: Record<string, unknown>) => boolean, ms?: number): Promise<Record<string, unknown>>;
  send(line: string): void;
  kill(): Promise<void>;
  /** Closes stdin: the agent leaves gracefully and exits. */
  stop(): Promise<void>;
}

export function startAgent(name: string, env: Record<string, string>): Agent {
  const proc = spawn(process.execPath, ['--import', 'tsx', FIXTURE], {
    cwd: PKG,
    env: { ...process.env, ...env, AGENT: name },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const messages: Record<string, unknown>[] = [];
  const waiters = new Set<() => void>();
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => {
    err = (err + d.toString()).slice(-4000);
  });
  createInterface({ input: proc.stdout! }).on('line', (l) => {
    try {
      messages.push(JSON.parse(l) as Record<string, unknown>);
    } catch {
      messages.push({ type: 'text', text: l });
    }
    for (const w of waiters) w();
  });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  proc.once('exit', () => {
    for (const w of waiters) w();
  });
  return {
    name,
    proc,
    messages,
    stderr: () => err,
    waitFor(pred, ms = 30_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = messages.find(pred);
          if (hit) {
            cleanup();
            resolve(hit);
          } else if (proc.exitCode !== null || proc.signalCode !== null) {
            cleanup();
            reject(new Error(`agent ${name} exited (${proc.exitCode ?? proc.signalCode}): ${err}`));
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`agent ${name}: timed out; stderr: ${err}`));
        }, ms);
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    send(line) {
      proc.stdin!.write(`${line}\n`);
    },
    async kill() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      await exited;
    },
    async stop() {
      proc.stdin!.end();
      const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    },
  };
}
