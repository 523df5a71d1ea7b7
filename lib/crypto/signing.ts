/**
 * Signing inputs and ECDSA P-256 signatures of v2. A signing input for
 * purpose P and fields f1..fn is lp("sumshare/2 " + P) ‖ lp(f1) ‖ … ‖ lp(fn),
 * so no field can run into the next and a signature made for one purpose
 * never verifies for another. Signatures are IEEE P1363 (r ‖ s, 64 bytes)
 * over SHA-256 of the input, made with the party's certificate key.
 *
 * @module
 */

import { type Bytes, lpAll } from "./bytes.ts";

const ECDSA = { name: "ECDSA", hash: "SHA-256" } as const;

/**
 * The purposes v2 signs or hashes; each has its own fields
 * (lib/protocol/transcript.ts). "start", "self-seed" and "linear-check"
 * are only hashed: the START transcript hash, a peer's commitment to its
 * self seed, and the seed of the receipt's linear-check challenge.
 */
export type Purpose =
  | "invite"
  | "join"
  | "start"
  | "confirm"
  | "input"
  | "self-seed"
  | "consistency"
  | "done"
  | "linear-check"
  | "attest"
  | "position";

/** The exact bytes a signature for `purpose` over `fields` covers. */
export function signingInput(purpose: Purpose, fields: readonly Bytes[]): Uint8Array<ArrayBuffer> {
  return lpAll([`sumshare/2 ${purpose}`, ...fields]);
}

/** Signs `fields` for `purpose` with an ECDSA P-256 private key. */
export async function sign(
  key: CryptoKey,
  purpose: Purpose,
  fields: readonly Bytes[],
): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.sign(ECDSA, key, signingInput(purpose, fields)));
}

/** Whether `signature` is `key`'s signature of `fields` for `purpose`. */
export async function verify(
  key: CryptoKey,
  signature: Uint8Array,
  purpose: Purpose,
  fields: readonly Bytes[],
): Promise<boolean> {
  if (signature.length !== 64) return false;
  try {
    return await crypto.subtle.verify(
      ECDSA,
      key,
      signature as Uint8Array<ArrayBuffer>,
      signingInput(purpose, fields),
    );
  } catch {
    return false;
  }
}
