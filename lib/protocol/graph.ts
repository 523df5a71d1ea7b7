/**
 * The sparse pairing graph (SecAgg+, Bell et al. 2020; docs/protocol.md
 * §18): the Harary graph H(n, K) over a permutation of the START roster.
 * Position q of the permuted roster is adjacent to q ± 1, …, q ± K/2
 * (mod n); a peer's _neighbourhood_ is its window q − K/2 … q + K/2, itself
 * included, K + 1 positions.
 *
 * An honest hospital does not choose the permutation: it sorts the roster by
 * positionKey = SHA-256 of ("position", session, startHash, name), where
 * startHash covers every JOIN of the roster, and anyone holding the whole
 * roster (a receipt) can recompute the graph. A peer sees only its window,
 * so it cannot recompute the ranks: it checks that its window's keys
 * increase along the ring (one wrap from position n − 1 to 0 at most),
 * which fixes the order of the peers it is shown but not who they are. A
 * hospital that deviates can show it any K certified peers, in their key
 * order rotated to fit, with a position of its own (review 9); so the
 * neighbourhoods are the hospital's word (docs/threat-model.md, "Sparse
 * rounds"). What ties the views together is the CONFIRM: each peer signs
 * the n and the position its START gave it, and a neighbour counts only
 * where the counting peer's START agrees (lib/protocol/transcript.ts).
 *
 * @module
 */

import { toHex } from "../encoding.ts";
import { fromHex } from "../crypto/bytes.ts";
import { signingInput } from "../crypto/signing.ts";
import { sessionBytes } from "./transcript.ts";

/** The key that orders `name` in the permuted roster: 32 bytes. */
export async function positionKey(
  session: string,
  startHash: Uint8Array,
  name: string,
): Promise<Uint8Array> {
  const input = signingInput("position", [sessionBytes(session), startHash, name]);
  return new Uint8Array(await crypto.subtle.digest("SHA-256", input));
}

/** Bytewise comparison of two equal-length byte strings. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) return a[i]! - b[i]!;
  }
  return a.length - b.length;
}

/**
 * The permuted roster: `names` sorted by their position keys (bytewise),
 * ties (never seen: SHA-256) by name. Index = position.
 */
export async function permutation(
  session: string,
  startHash: Uint8Array,
  names: readonly string[],
): Promise<string[]> {
  const keyed = await Promise.all(
    names.map(async (name) => ({ name, key: await positionKey(session, startHash, name) })),
  );
  keyed.sort((a, b) => compareBytes(a.key, b.key) || (a.name < b.name ? -1 : 1));
  return keyed.map((k) => k.name);
}

/** The positions of the window around `position`, from q − K/2 to q + K/2 (mod n). */
export function window(position: number, n: number, k: number): number[] {
  const half = k / 2;
  return Array.from({ length: k + 1 }, (_, i) => (((position - half + i) % n) + n) % n);
}

/** Whether positions `a` and `b` are in each other's window (or equal). */
export function adjacent(a: number, b: number, n: number, k: number): boolean {
  const d = Math.abs(a - b);
  return Math.min(d, n - d) <= k / 2;
}

/**
 * A subset of a window as a bitmap: bit i (byte ⌊i/8⌋, value 2^(i mod 8))
 * is set iff position `positions[i]` of the window is a member;
 * ⌈(K+1)/8⌉ bytes, lowercase hex.
 */
export function windowBitmap(positions: readonly number[], members: ReadonlySet<number>): string {
  const bytes = new Uint8Array(Math.ceil(positions.length / 8));
  positions.forEach((q, i) => {
    if (members.has(q)) bytes[i >> 3]! |= 1 << (i & 7);
  });
  return toHex(bytes);
}

/**
 * The positions a window bitmap sets, or undefined if it is not a bitmap
 * for this window (another length, or a bit set past its end).
 */
export function windowMembers(bitmap: string, positions: readonly number[]): number[] | undefined {
  if (bitmap.length !== 2 * Math.ceil(positions.length / 8) || !/^[0-9a-f]*$/.test(bitmap)) {
    return undefined;
  }
  const bytes = fromHex(bitmap);
  const members: number[] = [];
  for (let i = 0; i < 8 * bytes.length; i++) {
    if ((bytes[i >> 3]! >> (i & 7)) & 1) {
      if (i >= positions.length) return undefined;
      members.push(positions[i]!);
    }
  }
  return members;
}

/** The neighbour lists of H(n, K) over `order` (index = position): name → window names. */
export function neighbourLists(order: readonly string[], k: number): Map<string, string[]> {
  const n = order.length;
  return new Map(order.map((name, q) => [name, window(q, n, k).map((p) => order[p]!)]));
}

/**
 * setDigest of a sparse round's set S (the names in bytewise order): SHA-256
 * of utf8(names joined by ","). DONE and the linear check sign it in place
 * of the names; a peer cannot check it (it sees S in its window only), a
 * receipt verifier can.
 */
export async function setDigest(set: readonly string[]): Promise<Uint8Array> {
  const bytes = new TextEncoder().encode(set.join(","));
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}
