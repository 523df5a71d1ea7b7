/**
 * The random linear check behind a receipt's proof that the published
 * result is the unmasked sum of the survivors' masked inputs
 * (docs/protocol.md §8.7): a challenge vector r = PRG(seed) drawn over the
 * round's layout, exactly as a mask is (lib/crypto/masks.ts), and the inner
 * product ⟨r, v⟩ of a vector with it, one value per segment, each modulo
 * that segment's modulus.
 *
 * The seed hashes DONE's fields, so r exists only once the hospital has
 * committed to its result: a hospital that knew r first could publish
 * result + e for any e with ⟨r, e⟩ = 0.
 *
 * Products of two elements are near 2^104, far past what a double holds
 * exactly, so each element is split into 26-bit halves and the three
 * partial sums are kept reduced modulo the segment's modulus, every
 * intermediate below 2^53; BigInt is used once per segment, at the end.
 *
 * @module
 */

import type { Segment } from "../field.ts";
import { assertSegmentsCover } from "../field.ts";
import { FieldStream } from "../prg.ts";
import { lp } from "./bytes.ts";

/**
 * Independent challenges per round. One challenge lets a wrong result
 * through with probability about 2^-52 (1/m) per result a hospital tries, and
 * a hospital can try many (each a new DONE digest); two independent ones make
 * it about 2^-104.
 */
export const CHALLENGES = 2;

/**
 * The seed of challenge `j` (0 or 1): challenge 0 is drawn from seed_r
 * itself, challenge 1 from SHA-256(lp("sumshare/2 linear-check 2") ‖
 * lp(seed_r)), so the second is independent of the first (docs/protocol.md §8.7).
 */
export async function challengeSeed(seed: Uint8Array, j: number): Promise<Uint8Array> {
  if (j === 0) return seed;
  const input = lp("sumshare/2 linear-check 2", seed);
  return new Uint8Array(await crypto.subtle.digest("SHA-256", input));
}

/**
 * What a survivor attests: {@linkcode challengeProducts} for challenge 0,
 * then for challenge 1 — CHALLENGES values per segment, challenge by challenge.
 */
export async function attestedProducts(
  seed: Uint8Array,
  v: Float64Array,
  segments: readonly Segment[],
): Promise<number[]> {
  const values: number[] = [];
  for (let j = 0; j < CHALLENGES; j++) {
    values.push(...await challengeProducts(await challengeSeed(seed, j), v, segments));
  }
  return values;
}

/** The modulus of attested value `i` (challenge by challenge, segment by segment). */
export function attestedModulus(segments: readonly Segment[], i: number): number {
  return segments[i % segments.length]!.modulus;
}

/** Whether `values` has CHALLENGES values per segment, each below its segment's modulus. */
export function isAttestedShape(values: readonly number[], segments: readonly Segment[]): boolean {
  return values.length === CHALLENGES * segments.length &&
    values.every((v, i) => v < attestedModulus(segments, i));
}

/** Challenge elements drawn per step (512 KiB): bounds the extra memory of a check. */
const CHECK_CHUNK = 64 * 1024;

const TWO_26 = 2 ** 26;

/**
 * ⟨PRG(seed), v⟩ per segment of `segments` (which must cover `v` in order),
 * each modulo its segment's modulus: the values a survivor attests for its
 * masked vector, and the verifier's left-hand side. `v` holds canonical
 * elements of its segments.
 */
export async function challengeProducts(
  seed: Uint8Array,
  v: Float64Array,
  segments: readonly Segment[],
): Promise<number[]> {
  assertSegmentsCover(segments, v.length);
  const stream = await FieldStream.fromSeed(seed);
  const buffer = new Float64Array(Math.min(CHECK_CHUNK, v.length));
  const values: number[] = [];
  for (const { start, length, modulus } of segments) {
    const end = start + length;
    // Σ rh·yh, Σ (rh·yl + rl·yh), Σ rl·yl, each kept in [0, m).
    let high = 0;
    let middle = 0;
    let low = 0;
    for (let offset = start; offset < end; offset += buffer.length) {
      const part = v.subarray(offset, Math.min(offset + buffer.length, end));
      const r = buffer.subarray(0, part.length);
      await stream.fill(r, modulus);
      for (let i = 0; i < part.length; i++) {
        const a = r[i]!;
        const b = part[i]!;
        const ah = Math.floor(a / TWO_26);
        const al = a - ah * TWO_26;
        const bh = Math.floor(b / TWO_26);
        const bl = b - bh * TWO_26;
        // Each product < 2^52 and each running sum < m, so sums stay < 2m + 2^8 < 2^53.
        // Reductions are branch-free, t − m + m·[t − m < 0], as in field.ts addInto:
        // whether a random sum wraps is a coin toss a branch would mispredict.
        high += ah * bh - modulus;
        high += modulus * +(high < 0);
        high -= modulus;
        high += modulus * +(high < 0);
        let cross = ah * bl + al * bh - modulus; // < 2^53 − 2^28 < 2m: one subtraction reduces it
        cross += modulus * +(cross < 0);
        middle += cross - modulus;
        middle += modulus * +(middle < 0);
        low += al * bl - modulus;
        low += modulus * +(low < 0);
        low -= modulus;
        low += modulus * +(low < 0);
      }
    }
    const m = BigInt(modulus);
    const total = (BigInt(high) << 52n) + (BigInt(middle) << 26n) + BigInt(low);
    values.push(Number(total % m));
  }
  return values;
}
