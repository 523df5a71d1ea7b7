/**
 * The digest of a vector of field elements, as signed in INPUT and DONE:
 * SHA-256 over the concatenated SHA-256s of the vector's bytes (IEEE-754
 * binary64, little-endian) in pieces of 65,536 elements, the last piece
 * shorter. Web Crypto copies what it hashes, so hashing in pieces keeps a
 * 2^20-element vector from briefly costing a second copy; a list of hashes
 * binds the vector as firmly as one hash over it.
 *
 * @module
 */

import { toHex } from "../encoding.ts";

/** Elements hashed per Web Crypto call (512 KiB). */
const DIGEST_PIECE_ELEMENTS = 64 * 1024;

/** The vector's digest, 64 lowercase hex digits. */
export async function vectorDigest(vector: Float64Array): Promise<string> {
  const pieces = Math.ceil(vector.length / DIGEST_PIECE_ELEMENTS);
  const hashes = new Uint8Array(32 * pieces);
  for (let i = 0; i < pieces; i++) {
    const piece = vector.subarray(i * DIGEST_PIECE_ELEMENTS, (i + 1) * DIGEST_PIECE_ELEMENTS);
    const bytes = new Uint8Array(piece.buffer, piece.byteOffset, piece.byteLength);
    const hash = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
    hashes.set(new Uint8Array(hash), 32 * i);
  }
  return toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", hashes)));
}
