#!/usr/bin/env node
// datapath-gen: TypeScript bindings (codecs, typed maps and programs, constants) from a BPF object's BTF.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { type FieldCodecName, generate } from './gen/generate.js';

const USAGE = `usage: datapath-gen OBJECT.o [-o OUT.ts] [--check] [--type NAME]... [--codec STRUCT.FIELD=CODEC]...
                    [--skip-map NAME]... [--source LABEL]
  -o OUT.ts         write the module there (default: stdout)
  --check           do not write: exit 1 when OUT.ts differs from what the object generates (for CI)
  --type NAME       also emit the codec of struct/union/enum NAME (ring buffer and perf records)
  --codec S.F=C     field S.F (or typedef S) gets codec C: ipv4, ipv6, mac, be16, be32, bytes
  --skip-map NAME   no codec for map NAME (e.g. a key with bitfields, coded by hand)
  --source LABEL    the object's name in the header comment (default: its file name)`;

const CODECS = new Set(['ipv4', 'ipv6', 'mac', 'be16', 'be32', 'bytes']);

function main(argv: string[]): number {
  let object: string | undefined;
  let out: string | undefined;
  let check = false;
  let source: string | undefined;
  const types: string[] = [];
  const skipMaps: string[] = [];
  const codecs: Record<string, FieldCodecName> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '-h' || a === '--help') {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    } else if (a === '-o') out = value();
    else if (a === '--check') check = true;
    else if (a === '--type') types.push(value());
    else if (a === '--skip-map') skipMaps.push(value());
    else if (a === '--source') source = value();
    else if (a === '--codec') {
      const [field, codec] = value().split('=');
      if (field === undefined || codec === undefined || !CODECS.has(codec)) {
        throw new Error(`--codec wants STRUCT.FIELD=CODEC with CODEC one of ${[...CODECS].join(', ')}`);
      }
      codecs[field] = codec as FieldCodecName;
    } else if (object === undefined && !a.startsWith('-')) object = a;
    else throw new Error(`unexpected argument ${a}`);
  }
  if (object === undefined) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const text = generate(readFileSync(object), {
    source: source ?? basename(object),
    types,
    skipMaps,
    codecs,
  });
  if (check) {
    if (out === undefined) throw new Error('--check needs -o OUT.ts');
    if (!existsSync(out) || readFileSync(out, 'utf8') !== text) {
      process.stderr.write(`datapath-gen: ${out} is not what ${object} generates: regenerate it\n`);
      return 1;
    }
    return 0;
  }
  if (out === undefined) process.stdout.write(text);
  else writeFileSync(out, text);
  return 0;
}

try {
  process.exitCode = main(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`datapath-gen: ${(err as Error).message}\n`);
  process.exitCode = 1;
}
