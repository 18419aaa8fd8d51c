import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** Kernel objects left behind by a test run, by kind. */
export interface LeakReport {
  netns: string[];
  links: string[];
  pins: string[];
}

/** Where to look; overridable for unit tests of the scanner itself. */
export interface LeakScanRoots {
  netnsDir: string;
  sysClassNet: string;
  bpffs: string;
}

const DEFAULT_ROOTS: LeakScanRoots = {
  netnsDir: '/run/netns',
  sysClassNet: '/sys/class/net',
  bpffs: '/sys/fs/bpf',
};

function list(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function walkPins(dir: string, prefix: string, depth: number, out: string[]): void {
  for (const entry of list(dir)) {
    const full = join(dir, entry);
    if (entry.startsWith(prefix)) {
      out.push(full);
      continue;
    }
    if (depth > 0) {
      try {
        if (statSync(full).isDirectory()) walkPins(full, prefix, depth - 1, out);
      } catch {
        // vanished while scanning
      }
    }
  }
}

/** Lists named namespaces, host-namespace links and bpffs pins whose names start with `prefix`. */
export function scanLeaks(prefix: string, roots: LeakScanRoots = DEFAULT_ROOTS): LeakReport {
  const pins: string[] = [];
  if (existsSync(roots.bpffs)) walkPins(roots.bpffs, prefix, 4, pins);
  return {
    netns: list(roots.netnsDir).filter((n) => n.startsWith(prefix)),
    links: list(roots.sysClassNet).filter((n) => n.startsWith(prefix)),
    pins,
  };
}

/** A one-paragraph description of a non-empty report, or undefined when nothing leaked. */
export function describeLeaks(report: LeakReport): string | undefined {
  const parts: string[] = [];
  if (report.netns.length) parts.push(`network namespaces: ${report.netns.join(', ')}`);
  if (report.links.length) parts.push(`links in the host namespace: ${report.links.join(', ')}`);
  if (report.pins.length) parts.push(`bpffs pins: ${report.pins.join(', ')}`);
  return parts.length ? `test run leaked kernel objects — ${parts.join('; ')}` : undefined;
}
