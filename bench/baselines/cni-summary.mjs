#!/usr/bin/env node
// The untimed half of bench/baselines/cni-baseline.sh: checks what the plugin reported against what the
// pod namespaces held, and that IPAM released everything; then prints percentiles per command and writes
// the JSON summary ($JSON_OUT) that packages/cni/bench/run.ts reads:
//   { plugin, cniVersion, n, kernel, ADD: Stat, CHECK?: Stat, DEL: Stat, wallMs: { add, check, del } }
//   Stat = { n, p50, p90, p99, max, mean, sum } in milliseconds.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { release } from 'node:os';

const env = process.env;
const n = Number(env.N);
const work = env.WORK;
const problems = [];

function ipv4ToInt(text) {
  return text.split('.').reduce((acc, octet) => acc * 256 + Number(octet), 0);
}
const [subnetBase, subnetBits] = env.SUBNET.split('/');
const hostBits = 32 - Number(subnetBits);
const inSubnet = (addr) =>
  Math.floor(ipv4ToInt(addr) / 2 ** hostBits) === Math.floor(ipv4ToInt(subnetBase) / 2 ** hostBits);

const addresses = new Set();
for (let i = 1; i <= n; i++) {
  const where = `pod ${i}`;
  const result = JSON.parse(readFileSync(`${work}/add-${i}.json`, 'utf8'));
  if (result.cniVersion !== env.CNI_VERSION) problems.push(`${where}: cniVersion ${result.cniVersion}`);
  const ip = result.ips?.[0];
  const iface = ip === undefined ? undefined : result.interfaces?.[ip.interface];
  if (result.ips?.length !== 1 || iface === undefined) {
    problems.push(`${where}: expected one IP on a listed interface, got ${JSON.stringify(result.ips)}`);
    continue;
  }
  if (iface.name !== 'eth0' || iface.sandbox !== `/run/netns/${env.PREFIX}-p${i}`)
    problems.push(`${where}: the IP's interface is ${JSON.stringify(iface)}`);
  if (!/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(iface.mac ?? '')) problems.push(`${where}: MAC ${iface.mac}`);
  if (!result.interfaces.some((x) => x.sandbox === undefined && x.name))
    problems.push(`${where}: no host-side interface in the result`);
  if (!result.routes?.some((r) => r.dst === '0.0.0.0/0'))
    problems.push(`${where}: no default route in the result`);
  const [addr, prefixLen] = ip.address.split('/');
  if (!inSubnet(addr) || !ip.gateway || !inSubnet(ip.gateway))
    problems.push(`${where}: address ${ip.address} / gateway ${ip.gateway} outside ${env.SUBNET}`);
  if (addresses.has(addr)) problems.push(`${where}: ${addr} handed out twice`);
  addresses.add(addr);
  const podAddr = readFileSync(`${work}/pod-addr-${i}`, 'utf8').split(/\s+/)[3];
  if (podAddr !== `${addr}/${prefixLen}`)
    problems.push(`${where}: eth0 holds ${podAddr}, the result says ${ip.address}`);
  if (env.ROUTE_CHECK === '1') {
    const routes = readFileSync(`${work}/pod-route-${i}`, 'utf8');
    if (!routes.includes(`default via ${ip.gateway} dev eth0`))
      problems.push(`${where}: no default route via ${ip.gateway}`);
    if (!routes.includes(`${ip.gateway} dev eth0 scope link`))
      problems.push(`${where}: no scope-link route to ${ip.gateway}`);
  }
}
const held = existsSync(env.STORE)
  ? readdirSync(env.STORE).filter((f) => f !== 'lock' && !f.startsWith('last_reserved_ip'))
  : [];
if (held.length > 0) problems.push(`the host-local store still holds ${held.join(', ')} after DEL`);
if (problems.length > 0) {
  console.error(`cni-baseline: ${env.PLUGIN} failed validation:\n  ${problems.slice(0, 20).join('\n  ')}`);
  process.exit(1);
}

function times(command) {
  const file = `${work}/times-${command}`;
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').split('\n').filter(Boolean).map(Number);
}
function stat(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
  const sum = values.reduce((a, b) => a + b, 0);
  return {
    n: values.length,
    p50: at(0.5),
    p90: at(0.9),
    p99: at(0.99),
    max: sorted.at(-1),
    mean: sum / values.length,
    sum,
  };
}
const [add, check, del] = readFileSync(`${work}/phases`, 'utf8').trim().split(' ').map(Number);
const summary = { plugin: `${env.PLUGIN}+host-local`, cniVersion: env.CNI_VERSION, n, kernel: release() };
summary.ADD = stat(times('ADD'));
if (env.CHECK === '1') summary.CHECK = stat(times('CHECK'));
summary.DEL = stat(times('DEL'));
summary.wallMs = { add, check, del };

const col = (x) => x.toFixed(2).padStart(8);
console.log(
  `${env.PLUGIN} + host-local, cniVersion ${env.CNI_VERSION}, N=${n}, kernel ${summary.kernel}: every result checked`,
);
console.log('command      n      p50      p90      p99      max     mean   sum (ms)');
for (const command of ['ADD', 'CHECK', 'DEL']) {
  const s = summary[command];
  if (s === undefined) continue;
  console.log(
    `${command.padEnd(7)}${String(s.n).padStart(5)} ${col(s.p50)} ${col(s.p90)} ${col(s.p99)} ${col(s.max)} ${col(s.mean)} ${s.sum.toFixed(1).padStart(10)}`,
  );
}
if (env.JSON_OUT) writeFileSync(env.JSON_OUT, `${JSON.stringify(summary, null, 1)}\n`);
