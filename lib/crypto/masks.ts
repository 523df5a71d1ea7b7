/**
 * Adding and removing PRG masks: y = x + PRG(b) + Σ_{j>i} PRG(s_ij) −
 * Σ_{j<i} PRG(s_ij), each element modulo its own segment's modulus (p1, p2
 * or p3; see the layout in lib/query.ts), with PRG = lib/prg.ts FieldStream.
 *
 * One seed is one continuous stream, read in vector order: the masks of each
 * segment are drawn by rejection against that segment's modulus, and the
 * next segment goes on where the last stopped. So the mask is uniform modulo
 * each prime, and every party that expands a seed over the same layout gets
 * the same vector. Each element is added as it is drawn, so a long vector
 * never needs a second copy for its mask.
 *
 * The segments are a required argument, not a default of "all mod p1": a
 * caller that forgot them would mask a p2 segment modulo p1, and its
 * elements could land in [p2, p1).
 *
 * @module
 */

import { assertSegmentsCover, type Segment } from "../field.ts";
import { FieldStream } from "../prg.ts";

/**
 * acc += sign · PRG(seed), segment by segment, each modulo its segment's
 * modulus, in place; sign is +1 or −1. `segments` must cover `acc` in order.
 * Each element is drawn and added in one pass (FieldStream.addInto), so
 * masking needs no buffer beyond the keystream's.
 */
export async function applyMask(
  acc: Float64Array,
  seed: Uint8Array,
  sign: 1 | -1,
  segments: readonly Segment[],
): Promise<void> {
  assertSegmentsCover(segments, acc.length);
  const stream = await FieldStream.fromSeed(seed);
  for (const { start, length, modulus } of segments) {
    await stream.addInto(acc.subarray(start, start + length), sign, modulus);
  }
}

/**
 * The sign with which party `own` adds the pairwise mask it shares with
 * `other`: + when own < other (bytewise name order), − otherwise, so the
 * pair's two masks cancel in the sum.
 */
export function pairSign(own: string, other: string): 1 | -1 {
  return own < other ? 1 : -1;
}
