/**
 * Adding and removing PRG masks: y = x + PRG(b) + Σ_{j>i} PRG(s_ij) −
 * Σ_{j<i} PRG(s_ij) (mod p), with PRG = lib/prg.ts FieldStream. Streams are
 * read in 64 Ki-element pieces so a long vector never needs a second full
 * copy for a mask.
 *
 * @module
 */

import { addInto, subInto } from "../field.ts";
import { FieldStream } from "../prg.ts";

const PIECE = 65536;

/** acc += sign · PRG(seed) (mod p), in place; sign is +1 or −1. */
export async function applyMask(acc: Float64Array, seed: Uint8Array, sign: 1 | -1): Promise<void> {
  const stream = await FieldStream.fromSeed(seed);
  const piece = new Float64Array(Math.min(PIECE, acc.length));
  for (let at = 0; at < acc.length; at += PIECE) {
    const target = acc.subarray(at, at + PIECE);
    const draw = piece.subarray(0, target.length);
    await stream.fill(draw);
    if (sign === 1) addInto(target, draw);
    else subInto(target, draw);
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
