/**
 * Shamir threshold sharing over GF(p), for rounds that must survive peers
 * dropping out.
 *
 * Peer i with value v picks a random polynomial f of degree T − 1 with
 * f(0) = v and gives participant j the share f(x_j), where x_j = j + 1 is
 * j's position in the sorted participant list. Any T − 1 shares are uniform
 * and say nothing about v; any T of them determine f, hence v. Shares of
 * different values add up to shares of the sum, so the hospital interpolates
 * the sum at 0 from any T partial sums. Vectors are shared element by element.
 *
 * Only over GF(p1): a round whose totals need residues modulo p2 or p3 (see
 * the layout in query.ts) cannot be Shamir-shared here, and is refused by
 * {@linkcode assertThresholdLayout}.
 *
 * @module
 */

import { add, inv, isFieldElement, mul, mulSmall, P_BIG, sub } from "./field.ts";
import { FieldStream } from "./prg.ts";
import type { Layout } from "./query.ts";
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

/**
 * Refuses a threshold round whose layout needs residues: share vectors live
 * in GF(p1), and a residue modulo p2 or p3 shared there would be summed and
 * interpolated modulo the wrong prime.
 */
export function assertThresholdLayout(layout: Layout): void {
  const wide = layout.components.filter((c) => c.residues > 1);
  if (wide.length > 0) {
    throw new RangeCheckError(
      `Cannot run round: ${
        wide.map((c) => `${c.label} takes ${c.residues} residues`).join(", ")
      }, so the round needs a wider field than threshold mode supports yet; ` +
        "use an additive round (no --threshold), or lower --max, --max-rows or the number of peers",
    );
  }
}

/** The evaluation point of the participant at `index` in the sorted list. */
export function evaluationPoint(index: number): number {
  return index + 1;
}

/** Elements shared per step: bounds the coefficient buffers. */
const SHARE_CHUNK = 16 * 1024;

/**
 * Splits each element of `values` with its own random polynomial of degree
 * T − 1; returns the n share vectors f(1), …, f(n).
 */
export async function splitShamirVector(
  values: Float64Array,
  n: number,
  threshold: number,
): Promise<Float64Array[]> {
  if (threshold < 1 || threshold > n || n > 1 << 24) {
    throw new RangeError("Cannot share: need 1 ≤ T ≤ n");
  }
  const shares = Array.from({ length: n }, () => new Float64Array(values.length));
  const random = await FieldStream.random();
  const coefficients = Array.from(
    { length: threshold - 1 },
    () => new Float64Array(Math.min(SHARE_CHUNK, values.length)),
  );
  for (let offset = 0; offset < values.length; offset += SHARE_CHUNK) {
    const length = Math.min(SHARE_CHUNK, values.length - offset);
    for (const c of coefficients) await random.fill(c.subarray(0, length));
    for (let j = 0; j < n; j++) {
      const x = evaluationPoint(j);
      const out = shares[j]!;
      for (let e = 0; e < length; e++) {
        // Horner's rule from the top coefficient down to f(0) = value.
        let y = 0;
        for (let k = coefficients.length - 1; k >= 0; k--) {
          y = add(mulSmall(y, x), coefficients[k]![e]!);
        }
        out[offset + e] = add(mulSmall(y, x), values[offset + e]!);
      }
    }
  }
  return shares;
}

/** Splits a scalar: the share vectors of a one-element vector. */
export async function splitShamir(value: number, n: number, threshold: number): Promise<number[]> {
  if (!isFieldElement(value)) throw new RangeError("Cannot share: value is not a field element");
  const shares = await splitShamirVector(Float64Array.of(value), n, threshold);
  return shares.map((s) => s[0]!);
}

/** A point (x, y) on a polynomial; y is a vector of independent polynomials' values. */
export interface VectorPoint {
  x: number;
  y: Float64Array;
}

/** Raised when more than T points do not lie on one polynomial of degree T − 1. */
export class InconsistentSharesError extends Error {
  override name = "InconsistentSharesError";
}

/** The Lagrange basis weights at `at` for the given x-coordinates. */
function lagrangeWeights(xs: readonly number[], at: number): number[] {
  return xs.map((xi, i) => {
    let numerator = 1;
    let denominator = 1;
    xs.forEach((xj, j) => {
      if (j === i) return;
      numerator = mul(numerator, sub(at, xj));
      denominator = mul(denominator, sub(xi, xj));
    });
    return mul(numerator, inv(denominator));
  });
}

/** Σ w_i · y_i element-wise. */
function combine(
  points: readonly VectorPoint[],
  weights: readonly number[],
  length: number,
): Float64Array {
  const out = new Float64Array(length);
  points.forEach((point, i) => {
    const w = BigInt(weights[i]!);
    const y = point.y;
    for (let e = 0; e < length; e++) {
      const s = out[e]! + Number((BigInt(y[e]!) * w) % P_BIG);
      out[e] = s >= Number(P_BIG) ? s - Number(P_BIG) : s;
    }
  });
  return out;
}

/**
 * The secrets f(0) from at least T points. Uses the first T points and checks
 * that every further point lies on the same polynomials, so a corrupted
 * partial sum is caught instead of giving a wrong sum.
 */
export function reconstructShamirVector(
  points: readonly VectorPoint[],
  threshold: number,
): Float64Array {
  if (points.length < threshold) {
    throw new RangeError(`Cannot reconstruct: ${points.length} points, threshold ${threshold}`);
  }
  if (new Set(points.map((p) => p.x)).size !== points.length) {
    throw new RangeError("Cannot reconstruct: repeated evaluation point");
  }
  const length = points[0]!.y.length;
  if (points.some((p) => p.y.length !== length)) {
    throw new RangeError("Cannot reconstruct: lengths differ");
  }
  const basis = points.slice(0, threshold);
  const xs = basis.map((p) => p.x);
  for (const extra of points.slice(threshold)) {
    const predicted = combine(basis, lagrangeWeights(xs, extra.x), length);
    for (let e = 0; e < length; e++) {
      if (predicted[e] !== extra.y[e]) {
        throw new InconsistentSharesError(
          "Partial sums are inconsistent: they do not lie on one polynomial of the round's degree",
        );
      }
    }
  }
  return combine(basis, lagrangeWeights(xs, 0), length);
}
