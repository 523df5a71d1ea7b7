/**
 * Shamir sharing of a 32-byte secret (a mask private scalar, or a self-mask
 * seed) over GF(p), p = 2^52 − 47. The secret is cut into 8 words, word k =
 * u32 little-endian of bytes 4k..4k+3 (each < 2^32 < p), and each word gets
 * its own polynomial of degree T − 1 with uniform coefficients (rejection
 * sampled by lib/field.ts). The participant at START roster index i gets the
 * 8 values at x = i + 1. Any T shares rebuild the words by Lagrange
 * interpolation at 0; a rebuilt word ≥ 2^32 proves the shares inconsistent.
 *
 * @module
 */

import { add, inv, mul, randomFieldElement, sub } from "../field.ts";
import { SHARE_WORDS } from "../wire/messages.ts";

/** Bytes in a shared secret. */
export const SECRET_BYTES = 32;

/** Raised when shares cannot come from one sharing of a secret. */
export class InconsistentSharesError extends Error {
  override name = "InconsistentSharesError";
}

/** One participant's share: its evaluation point and 8 field elements. */
export interface SecretShare {
  x: number;
  words: Float64Array;
}

/**
 * Splits `secret` with threshold `threshold` for the evaluation points `xs`
 * (distinct, from 1). Returns one share per point, in the order given.
 */
export function splitSecret(
  secret: Uint8Array,
  xs: readonly number[],
  threshold: number,
): SecretShare[] {
  if (secret.length !== SECRET_BYTES) throw new RangeError("Cannot split: a secret is 32 bytes");
  if (!Number.isInteger(threshold) || threshold < 1 || threshold > xs.length) {
    throw new RangeError("Cannot split: threshold must be from 1 to the number of shares");
  }
  if (new Set(xs).size !== xs.length || xs.some((x) => !Number.isInteger(x) || x < 1)) {
    throw new RangeError("Cannot split: evaluation points must be distinct whole numbers from 1");
  }
  const view = new DataView(secret.buffer, secret.byteOffset, secret.byteLength);
  const shares = xs.map((x) => ({ x, words: new Float64Array(SHARE_WORDS) }));
  for (let k = 0; k < SHARE_WORDS; k++) {
    const coefficients = [view.getUint32(4 * k, true)];
    for (let d = 1; d < threshold; d++) coefficients.push(randomFieldElement());
    for (const share of shares) {
      // Horner's rule; x ≤ roster size, far below p.
      let y = 0;
      for (let d = coefficients.length - 1; d >= 0; d--) y = add(mul(y, share.x), coefficients[d]!);
      share.words[k] = y;
    }
  }
  return shares;
}

/**
 * Lagrange weights already computed, by evaluation points and target. The
 * hospital rebuilds every secret of a round from the same revealers, so the
 * weights (T² multiplications and T inversions for each point checked) are
 * the same for each; recomputing them made unmasking at N = 200, T = 101
 * take 36 s. Only public evaluation points are kept, never a share.
 */
/**
 * Barycentric weights of each base set seen lately, by its points: the
 * T² part of interpolation, the same for every point evaluated at. A
 * hospital rebuilding many secrets over the same revealers (the complete
 * graph) computes them once.
 */
const barycentricCache = new Map<string, readonly number[]>();
const CACHE_ENTRIES = 256;

/**
 * λ_j = 1 / Π_{m≠j} (x_j − x_m) for the base points, with one inversion for
 * all of them: computing each Lagrange weight on its own took T inversions
 * per point evaluated at, and with sparse pairing every owner has its own
 * base, so at N = 1,000 that was 6.7 s of the hospital's unmasking.
 */
function barycentric(base: readonly SecretShare[]): readonly number[] {
  const key = base.map((share) => share.x).join(",");
  const known = barycentricCache.get(key);
  if (known) return known;
  const products = base.map((share, j) => {
    let product = 1;
    base.forEach((other, m) => {
      if (m !== j) product = mul(product, sub(share.x, other.x));
    });
    return product;
  });
  const computed = invertAll(products);
  if (barycentricCache.size >= CACHE_ENTRIES) {
    barycentricCache.delete(barycentricCache.keys().next().value!);
  }
  barycentricCache.set(key, computed);
  return computed;
}

/** The inverse of every (non-zero) value, with one inversion (Montgomery's trick). */
function invertAll(values: readonly number[]): number[] {
  const prefix = new Array<number>(values.length);
  let product = 1;
  values.forEach((value, i) => {
    prefix[i] = product;
    product = mul(product, value);
  });
  let inverse = inv(product);
  const inverses = new Array<number>(values.length);
  for (let i = values.length - 1; i >= 0; i--) {
    inverses[i] = mul(inverse, prefix[i]!);
    inverse = mul(inverse, values[i]!);
  }
  return inverses;
}

/**
 * Lagrange weights of `base` points for evaluating their polynomial at `at`,
 * a point not among them (0, or an extra share's point, which the caller
 * keeps distinct): ℓ_j(at) = λ_j · L(at) / (at − x_j) with
 * L(at) = Π_m (at − x_m). The points are distinct and far below p, so no
 * difference is zero.
 */
function weights(base: readonly SecretShare[], at: number): readonly number[] {
  const lambdas = barycentric(base);
  const differences = base.map((share) => sub(at, share.x));
  const whole = differences.reduce((product, d) => mul(product, d), 1);
  return invertAll(differences).map((inverse, j) => mul(mul(lambdas[j]!, whole), inverse));
}

function evaluate(base: readonly SecretShare[], w: readonly number[], k: number): number {
  let y = 0;
  base.forEach((share, j) => {
    y = add(y, mul(w[j]!, share.words[k]!));
  });
  return y;
}

/**
 * Rebuilds the secret from at least `threshold` shares: interpolates through
 * the first `threshold`, and requires every further share to lie on the same
 * polynomials and every word to be below 2^32 (else InconsistentSharesError).
 */
export function combineSecret(shares: readonly SecretShare[], threshold: number): Uint8Array {
  if (!Number.isInteger(threshold) || threshold < 1 || shares.length < threshold) {
    throw new InconsistentSharesError(
      `Cannot rebuild secret: ${shares.length} shares, ${threshold} needed`,
    );
  }
  if (new Set(shares.map((s) => s.x)).size !== shares.length) {
    throw new InconsistentSharesError("Cannot rebuild secret: an evaluation point repeats");
  }
  // In order of evaluation point, so the same revealers give the same base (and cached weights)
  // whatever order their shares arrived in.
  const sorted = [...shares].sort((a, b) => a.x - b.x);
  const base = sorted.slice(0, threshold);
  const atZero = weights(base, 0);
  const extra = sorted.slice(threshold).map((share) => ({ share, w: weights(base, share.x) }));
  const secret = new Uint8Array(SECRET_BYTES);
  const view = new DataView(secret.buffer);
  for (let k = 0; k < SHARE_WORDS; k++) {
    const word = evaluate(base, atZero, k);
    if (word >= 2 ** 32) {
      throw new InconsistentSharesError("Cannot rebuild secret: the shares are inconsistent");
    }
    for (const { share, w } of extra) {
      if (evaluate(base, w, k) !== share.words[k]) {
        throw new InconsistentSharesError(
          `Cannot rebuild secret: the share at point ${share.x} is inconsistent`,
        );
      }
    }
    view.setUint32(4 * k, word, true);
  }
  return secret;
}
