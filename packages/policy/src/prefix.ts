// Prefixes as the policy engine keys them: an @datapath/ip prefix with its canonical text.
import { formatPrefix, type IpPrefix, tryParsePrefix as parse } from '@datapath/ip';
import { PolicyError } from './errors.js';

/** A prefix of a rule or an identity: an `IpPrefix` (host bits cleared) with its canonical text. */
export interface Prefix extends IpPrefix {
  /** Canonical text, e.g. `10.0.0.0/8`. */
  readonly text: string;
  /** @deprecated Use `value`. */
  readonly bits: bigint;
  /** @deprecated Use `length`. */
  readonly len: number;
}

/** Parses `addr/len` (or a bare address = host prefix), clearing host bits; `undefined` if malformed. */
export function tryParsePrefix(s: string): Prefix | undefined {
  const p = parse(s, { strict: false, bare: true });
  return p === undefined ? undefined : { ...p, text: formatPrefix(p), bits: p.value, len: p.length };
}

/** Like {@link tryParsePrefix} but throws `PolicyError` `InvalidArgument`. */
export function parsePrefix(s: string): Prefix {
  const p = tryParsePrefix(s);
  if (p === undefined) throw new PolicyError('InvalidArgument', `not an IP prefix: ${JSON.stringify(s)}`);
  return p;
}
