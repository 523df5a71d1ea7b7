/**
 * Additive n-of-n secret sharing over GF(p).
 *
 * A value v is split into n shares s_1..s_n with s_1..s_{n-1} uniformly random
 * and s_n = v − Σ s_i (mod p). Any n − 1 shares are uniformly distributed and
 * independent of v; all n together add up to v.
 *
 * @module
 */

import { add, isFieldElement, P, randomFieldElement, sub } from "./field.ts";

/** Raised when a round's parameters would let the sum wrap around p. */
export class RangeCheckError extends Error {
  override name = "RangeCheckError";
}

/**
 * Refuses a round whose sum could reach p: with n inputs in [0, max] the
 * largest sum is n·max, and it must stay below p to come out exact.
 */
export function assertSumFits(participants: number, max: bigint): void {
  if (!Number.isSafeInteger(participants) || participants < 2) {
    throw new RangeCheckError(
      `Cannot run round: need at least 2 participants, got ${participants}`,
    );
  }
  if (max < 0n) throw new RangeCheckError("Cannot run round: the maximum R must not be negative");
  if (BigInt(participants) * max >= P) {
    throw new RangeCheckError(
      `Cannot run round: ${participants} × R = ${
        BigInt(participants) * max
      } is not below p = ${P}, so the sum could wrap; lower --max or the number of peers`,
    );
  }
}

/** Splits `value` (a field element) into `n` additive shares. */
export function splitIntoShares(value: bigint, n: number): bigint[] {
  if (!isFieldElement(value)) throw new RangeError("Cannot share: value is not a field element");
  if (!Number.isSafeInteger(n) || n < 1) throw new RangeError("Cannot share: n must be at least 1");
  const shares: bigint[] = [];
  let rest = value;
  for (let i = 0; i < n - 1; i++) {
    const r = randomFieldElement();
    shares.push(r);
    rest = sub(rest, r);
  }
  shares.push(rest);
  return shares;
}

/** Adds shares (or partial sums) in GF(p). */
export function addShares(shares: Iterable<bigint>): bigint {
  let total = 0n;
  for (const s of shares) {
    if (!isFieldElement(s)) throw new RangeError("Cannot add: share is not a field element");
    total = add(total, s);
  }
  return total;
}
