/**
 * Additive n-of-n secret sharing over GF(p), and its compressed form for
 * vectors: pairwise masks from seeds.
 *
 * Plain form: a value v is split into n shares s_1..s_n with s_1..s_{n−1}
 * uniformly random and s_n = v − Σ s_i (mod p). Any n − 1 shares are uniform
 * and independent of v; all n add up to v.
 *
 * Seeded form (what the peers run): for each pair of participants i < j, i
 * draws a 32-byte seed s_ij and sends it to j; i adds PRG(s_ij) to its vector
 * and j subtracts it. Each peer's masked vector (its partial sum) is its own
 * input plus masks that cancel in the total, so the hospital adds the partial
 * sums and gets exactly Σ v. This is additive sharing whose shares are
 * expanded from seeds instead of sent whole: a peer sends 32 bytes per pair
 * instead of a vector. Privacy is then computational (AES-CTR as PRG).
 *
 * A vector of several segments (residues modulo p1, p2, p3; see the layout
 * in query.ts) is masked segment by segment: each seed's one stream is read
 * in vector order, each segment's masks drawn and applied modulo its own
 * modulus, so the masks are uniform modulo each prime independently.
 *
 * @module
 */

import {
  add,
  addInto,
  assertSegmentsCover,
  isFieldElement,
  P,
  P_BIG,
  randomFieldElement,
  type Segment,
  sub,
  subInto,
} from "./field.ts";
import { FieldStream } from "./prg.ts";

/** Raised when a round's parameters would let the sum wrap around p. */
export class RangeCheckError extends Error {
  override name = "RangeCheckError";
}

/**
 * Refuses a round whose sum could reach p: with n inputs in [0, max] the
 * largest sum is n·max, and it must stay below p to come out exact.
 */
export function assertSumFits(participants: number, max: bigint, what = "R"): void {
  if (!Number.isSafeInteger(participants) || participants < 2) {
    throw new RangeCheckError(
      `Cannot run round: need at least 2 participants, got ${participants}`,
    );
  }
  if (max < 0n) throw new RangeCheckError(`Cannot run round: ${what} must not be negative`);
  if (BigInt(participants) * max >= P_BIG) {
    throw new RangeCheckError(
      `Cannot run round: ${participants} × ${what} = ${
        BigInt(participants) * max
      } is not below p = ${P_BIG}, so the sum could wrap; lower --max${
        what === "R" ? "" : " or --max-rows"
      } or the number of peers`,
    );
  }
}

/** Splits a scalar field element into `n` additive shares. */
export function splitIntoShares(value: number, n: number): number[] {
  if (!isFieldElement(value)) throw new RangeError("Cannot share: value is not a field element");
  if (!Number.isSafeInteger(n) || n < 1) throw new RangeError("Cannot share: n must be at least 1");
  const shares: number[] = [];
  let rest = value;
  for (let i = 0; i < n - 1; i++) {
    const r = randomFieldElement();
    shares.push(r);
    rest = sub(rest, r);
  }
  shares.push(rest);
  return shares;
}

/** Adds scalar shares (or partial sums) in GF(p). */
export function addShares(shares: Iterable<number>): number {
  let total = 0;
  for (const s of shares) {
    if (!isFieldElement(s)) throw new RangeError("Cannot add: share is not a field element");
    total = add(total, s);
  }
  return total;
}

/** One pairwise mask: the seed, and whether this peer adds or subtracts it. */
export interface PairMask {
  seed: Uint8Array;
  sign: 1 | -1;
}

/** Elements expanded per step, so a mask never needs a whole vector of memory. */
const MASK_CHUNK = 32 * 1024;

/** Options for {@linkcode applyMasks}. */
export interface MaskOptions {
  /** The vector's segments, in order; default: the whole vector modulo p. */
  segments?: readonly Segment[];
  /**
   * The stream a seed expands to; default {@linkcode FieldStream.fromSeed}.
   * Injected only by tests, to feed candidates a segment must reject.
   */
  streamOf?: (seed: Uint8Array) => Promise<FieldStream>;
}

/**
 * Adds (+1) or subtracts (−1) each seed's expansion into `vector`, in place,
 * one chunk at a time, each segment drawn and reduced modulo its own
 * modulus, all from the seed's one stream in vector order.
 */
export async function applyMasks(
  vector: Float64Array,
  masks: readonly PairMask[],
  options: MaskOptions = {},
): Promise<void> {
  const {
    segments = [{ start: 0, length: vector.length, modulus: P }],
    streamOf = FieldStream.fromSeed,
  } = options;
  assertSegmentsCover(segments, vector.length);
  const buffer = new Float64Array(Math.min(MASK_CHUNK, vector.length));
  for (const { seed, sign } of masks) {
    const stream = await streamOf(seed);
    for (const { start, length, modulus } of segments) {
      const end = start + length;
      for (let offset = start; offset < end; offset += buffer.length) {
        const part = vector.subarray(offset, Math.min(offset + buffer.length, end));
        const mask = buffer.subarray(0, part.length);
        await stream.fill(mask, modulus);
        if (sign === 1) addInto(part, mask, modulus);
        else subInto(part, mask, modulus);
      }
    }
  }
}
