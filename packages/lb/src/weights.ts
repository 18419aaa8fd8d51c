// The weighted slot table of random selection: how many of a service's slots 1..count each active
// backend fills, so that a uniform pick over the slots (what the datapath does) follows the weights.

/**
 * Slot counts for backends of weights `weights` (each > 0) within `maxSlots` slots (≥ the number of
 * backends). Exact when the weights divided by their greatest common divisor sum to at most `maxSlots`
 * (1:3 gives 1 and 3 slots); otherwise the slots are shared in proportion to the weights (largest
 * remainder) with at least one slot per backend.
 *
 * @throws RangeError when a weight is not a positive integer or `maxSlots` is below the backend count.
 * @example
 * ```ts
 * import { weightedSlotCounts } from '@datapath/lb';
 * weightedSlotCounts([2, 6, 4], 4096); // [1, 3, 2]
 * ```
 */
export function weightedSlotCounts(weights: readonly number[], maxSlots: number): number[] {
  for (const w of weights)
    if (!Number.isInteger(w) || w <= 0) throw new RangeError(`weight ${w} is not a positive integer`);
  if (weights.length > maxSlots)
    throw new RangeError(`${weights.length} backends do not fit ${maxSlots} slots`);
  if (weights.length === 0) return [];
  const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
  const g = weights.reduce(gcd);
  const reduced = weights.map((w) => w / g);
  const sum = reduced.reduce((a, b) => a + b, 0);
  if (sum <= maxSlots) return reduced;
  const quotas = reduced.map((w) => (w * maxSlots) / sum);
  const counts = quotas.map((q) => Math.max(1, Math.floor(q)));
  let left = maxSlots - counts.reduce((a, b) => a + b, 0);
  // short: the largest remainders get one more; over (backends raised to one slot): the largest give one back
  const order = quotas
    .map((q, i) => ({ i, frac: q - Math.floor(q) }))
    .sort((a, b) => b.frac - a.frac || a.i - b.i);
  for (const { i } of order) {
    if (left <= 0) break;
    counts[i]!++;
    left--;
  }
  while (left < 0) {
    let big = 0;
    for (let i = 1; i < counts.length; i++) if (counts[i]! > counts[big]!) big = i;
    counts[big]!--;
    left++;
  }
  return counts;
}
