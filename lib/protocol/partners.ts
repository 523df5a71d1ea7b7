/**
 * A peer's partner set as signed in INPUT: the participants it masked with,
 * itself included, as a bitmap over START roster indices. Bit i (byte
 * ⌊i/8⌋, value 2^(i mod 8)) is set iff roster participant i is a partner;
 * the bitmap has ⌈n/8⌉ bytes for a roster of n, and the bits from n on are
 * zero, so each set has one spelling. On the wire and in receipts it is
 * lowercase hex.
 *
 * Why it is signed: a hospital that relays shares selectively can leave
 * different peers with different partner sets; a survivor whose pairwise
 * masks with other survivors are missing would unmask alone. Each revealer
 * checks that every survivor's signed partner set holds the whole survivor
 * set before it signs the set (lib/protocol/peer/masked_input.ts).
 *
 * @module
 */

import { toHex } from "../encoding.ts";
import { fromHex } from "../crypto/bytes.ts";

/** The bitmap of `members` (names in `roster`) over the roster's indices, lowercase hex. */
export function partnerBitmap(roster: readonly string[], members: Iterable<string>): string {
  const bytes = new Uint8Array(Math.ceil(roster.length / 8));
  for (const name of members) {
    const i = roster.indexOf(name);
    if (i < 0) throw new RangeError(`Cannot build partner set: ${name} is not in the roster`);
    bytes[i >> 3]! |= 1 << (i & 7);
  }
  return toHex(bytes);
}

/**
 * The names a bitmap sets, in roster order; undefined if it is not a
 * bitmap for this roster (another length, or a bit set past its end).
 */
export function bitmapMembers(bitmap: string, roster: readonly string[]): string[] | undefined {
  if (bitmap.length !== 2 * Math.ceil(roster.length / 8) || !/^[0-9a-f]*$/.test(bitmap)) {
    return undefined;
  }
  const bytes = fromHex(bitmap);
  const members: string[] = [];
  for (let i = 0; i < 8 * bytes.length; i++) {
    if ((bytes[i >> 3]! >> (i & 7)) & 1) {
      if (i >= roster.length) return undefined;
      members.push(roster[i]!);
    }
  }
  return members;
}
