/**
 * Shamir threshold sharing over GF(p), for rounds that must survive peers
 * dropping out.
 *
 * Peer i with value v picks a random polynomial f of degree T − 1 with
 * f(0) = v and gives participant j the share f(x_j), where x_j = j + 1 is
 * j's position in the sorted participant list. Any T − 1 shares are uniform
 * and say nothing about v; any T of them determine f, hence v. Shares of
 * different values add up to shares of the sum, so the hospital interpolates
 * the sum at 0 from any T partial sums.
 *
 * @module
 */

import { add, inv, isFieldElement, mul, randomFieldElement, sub } from "./field.ts";
import { RangeCheckError } from "./sharing.ts";

/**
 * Refuses threshold configurations that break the privacy floors:
 *
 * - T > N/2: each peer answers once per session, so no two disjoint sets of
 *   T answers exist and a hospital cannot ask two different contributor sets
 *   and learn one value by difference.
 * - T ≤ N: otherwise no round could ever finish.
 * - 2 ≤ K ≤ N: a sum over fewer than two inputs would be one peer's value.
 */
export function assertThresholdConfig(
  peers: number,
  threshold: number,
  minContributors: number,
): void {
  if (!Number.isSafeInteger(threshold) || threshold * 2 <= peers || threshold > peers) {
    throw new RangeCheckError(
      `Cannot run round: the threshold must be more than half the peers and at most their number ` +
        `(for ${peers} peers: ${Math.floor(peers / 2) + 1} to ${peers}), got ${threshold}`,
    );
  }
  if (!Number.isSafeInteger(minContributors) || minContributors < 2 || minContributors > peers) {
    throw new RangeCheckError(
      `Cannot run round: --min-contributors must be from 2 to ${peers}, got ${minContributors}`,
    );
  }
}

/** The evaluation point of the participant at `index` in the sorted list. */
export function evaluationPoint(index: number): bigint {
  return BigInt(index + 1);
}

/** Splits `value` into shares f(1), …, f(n) of a random degree-(T−1) polynomial. */
export function splitShamir(value: bigint, n: number, threshold: number): bigint[] {
  if (!isFieldElement(value)) throw new RangeError("Cannot share: value is not a field element");
  if (threshold < 1 || threshold > n) throw new RangeError("Cannot share: need 1 ≤ T ≤ n");
  const coefficients = [value];
  for (let k = 1; k < threshold; k++) coefficients.push(randomFieldElement());
  return Array.from({ length: n }, (_, j) => evaluate(coefficients, evaluationPoint(j)));
}

/** Evaluates a polynomial (coefficients from the constant term up) at x, by Horner's rule. */
function evaluate(coefficients: bigint[], x: bigint): bigint {
  let y = 0n;
  for (let k = coefficients.length - 1; k >= 0; k--) y = add(mul(y, x), coefficients[k]!);
  return y;
}

/** A point (x, y) on a polynomial. */
export interface Point {
  x: bigint;
  y: bigint;
}

/** Raised when more than T points do not lie on one polynomial of degree T − 1. */
export class InconsistentSharesError extends Error {
  override name = "InconsistentSharesError";
}

/** The Lagrange basis value at `at` for the points' x-coordinates, for point `i`. */
function lagrangeAt(points: readonly Point[], i: number, at: bigint): bigint {
  let numerator = 1n;
  let denominator = 1n;
  const xi = points[i]!.x;
  points.forEach(({ x }, j) => {
    if (j === i) return;
    numerator = mul(numerator, sub(at, x));
    denominator = mul(denominator, sub(xi, x));
  });
  return mul(numerator, inv(denominator));
}

/** The value at `at` of the degree-(len − 1) polynomial through `points`. */
function interpolate(points: readonly Point[], at: bigint): bigint {
  let value = 0n;
  for (let i = 0; i < points.length; i++) {
    value = add(value, mul(points[i]!.y, lagrangeAt(points, i, at)));
  }
  return value;
}

/**
 * The secret f(0) from at least T points of a degree-(T−1) polynomial. Uses
 * the first T points and checks every further point lies on the same
 * polynomial, so a corrupted partial sum is caught instead of giving a wrong
 * sum.
 */
export function reconstructShamir(points: readonly Point[], threshold: number): bigint {
  if (points.length < threshold) {
    throw new RangeError(`Cannot reconstruct: ${points.length} points, threshold ${threshold}`);
  }
  if (new Set(points.map((p) => p.x)).size !== points.length) {
    throw new RangeError("Cannot reconstruct: repeated evaluation point");
  }
  const basis = points.slice(0, threshold);
  for (const extra of points.slice(threshold)) {
    if (interpolate(basis, extra.x) !== extra.y) {
      throw new InconsistentSharesError(
        "Partial sums are inconsistent: they do not lie on one polynomial of the round's degree",
      );
    }
  }
  return interpolate(basis, 0n);
}
