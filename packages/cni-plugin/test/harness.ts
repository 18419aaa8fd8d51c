// Privileged-test harness: installs the bundled plugin into a temporary CNI bin directory once, and runs it
// as a runtime would (exec, CNI_* environment, config on stdin) inside a private "host" namespace made by
// the test (nsenter --net), so nothing is configured in the machine's own namespace.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const PKG = resolve(fileURLToPath(new URL('..', import.meta.url)));
const TSX = resolve(PKG, '../../node_modules/tsx/dist/esm/index.mjs');

/** A temporary installation of datapath-cni (launcher + bundle), made with scripts/install.mjs. */
export interface Installed {
  /** The CNI bin directory. */
  dir: string;
  /** The launcher. */
  bin: string;
  /** Removes the installation. */
  remove(): void;
}

/** Bundles and installs the plugin into a fresh temporary directory (≈2 s). */
export function installPlugin(): Installed {
  const dir = mkdtempSync(join(tmpdir(), 'datapath-cni-bin-'));
  execFileSync(process.execPath, ['--import', TSX, join(PKG, 'scripts/install.mjs'), dir], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return { dir, bin: join(dir, 'datapath-cni'), remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** One plugin invocation. */
export interface Invocation {
  /** CNI_COMMAND (undefined: not set). */
  command?: string;
  /** CNI_CONTAINERID. */
  containerId?: string;
  /** CNI_NETNS (a path). */
  netns?: string;
  /** CNI_IFNAME (default eth0 for ADD/DEL/CHECK). */
  ifname?: string;
  /** CNI_PATH (default: the install directory). */
  path?: string;
  /** CNI_ARGS. */
  args?: string;
  /** The config (an object is JSON-encoded; a string is sent as is). */
  config?: unknown;
  /** Extra environment. */
  env?: Record<string, string>;
  /** The named namespace the plugin runs in (nsenter --net); it plays the host. */
  hostNs: string;
}

/** What the plugin printed and returned. */
export interface Outcome {
  /** Exit status. */
  status: number | null;
  /** stdout, raw. */
  stdout: string;
  /** stderr, raw. */
  stderr: string;
  /** stdout parsed as JSON (undefined when empty). */
  json: Record<string, unknown> | undefined;
}

function envOf(inst: Installed, inv: Invocation): Record<string, string> {
  const env: Record<string, string> = { ...inv.env };
  if (inv.command !== undefined) env.CNI_COMMAND = inv.command;
  const perContainer = inv.command === 'ADD' || inv.command === 'DEL' || inv.command === 'CHECK';
  if (inv.containerId !== undefined) env.CNI_CONTAINERID = inv.containerId;
  if (inv.netns !== undefined) env.CNI_NETNS = inv.netns;
  if (inv.ifname !== undefined) env.CNI_IFNAME = inv.ifname;
  else if (perContainer) env.CNI_IFNAME = 'eth0';
  env.CNI_PATH = inv.path ?? inst.dir;
  if (inv.args !== undefined) env.CNI_ARGS = inv.args;
  return env;
}

function argv(inst: Installed, inv: Invocation): string[] {
  return [`--net=/run/netns/${inv.hostNs}`, inst.bin];
}

function outcome(status: number | null, stdout: string, stderr: string): Outcome {
  let json: Record<string, unknown> | undefined;
  if (stdout.trim() !== '') {
    try {
      json = JSON.parse(stdout) as Record<string, unknown>;
    } catch {
      throw new Error(`plugin stdout is not JSON: ${stdout}\nstderr: ${stderr}`);
    }
  }
  return { status, stdout, stderr, json };
}

const input = (config: unknown) =>
  config === undefined ? '' : typeof config === 'string' ? config : JSON.stringify(config);

/** Runs the plugin synchronously with a minimal environment (only what `inv` sets), as a runtime does. */
export function runCni(inst: Installed, inv: Invocation): Outcome {
  const r = spawnSync('nsenter', argv(inst, inv), {
    env: envOf(inst, inv),
    input: input(inv.config),
    encoding: 'utf8',
  });
  if (r.error) throw r.error;
  return outcome(r.status, r.stdout, r.stderr);
}

/** Runs the plugin asynchronously (for concurrent invocations). */
export function runCniAsync(inst: Installed, inv: Invocation): Promise<Outcome> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn('nsenter', argv(inst, inv), {
      env: envOf(inst, inv),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString('utf8');
    });
    child.stderr.on('data', (c: Buffer) => {
      err += c.toString('utf8');
    });
    child.on('error', reject);
    child.on('close', (status) => {
      try {
        resolvePromise(outcome(status, out, err));
      } catch (e) {
        reject(e);
      }
    });
    child.stdin.end(input(inv.config));
  });
}

/** The config plus the given ADD result as `prevResult`, as a runtime sends it for CHECK and DEL. */
export function withPrev(config: Record<string, unknown>, prev: unknown): Record<string, unknown> {
  return { ...config, prevResult: prev };
}
