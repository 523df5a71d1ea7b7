/**
 * Sealing one peer's shares to another: AES-256-GCM under the directional
 * key from lib/crypto/agreement.ts, a 12-byte zero nonce (each directional
 * key seals exactly one message per session, so the nonce never repeats under
 * a key), and associated data lp("sumshare/2 share") ‖ lp(session) ‖
 * lp(from) ‖ lp(to), so a sealed share cannot be moved to another session,
 * sender or recipient. The plaintext is the mask-key share then the
 * self-seed share: 16 field elements, each u64 little-endian.
 *
 * @module
 */

import { lp } from "./bytes.ts";
import { readElements, SHARE_WORDS, writeElements } from "../wire/messages.ts";
import { concat } from "./bytes.ts";

const NONCE = new Uint8Array(12);

/** What one peer gives another in a threshold round: a share of each secret. */
export interface SharePair {
  mask: Float64Array;
  self: Float64Array;
}

/** Raised when a sealed share does not open: wrong key, sender, recipient, session or bytes. */
export class SealError extends Error {
  override name = "SealError";
}

function aad(session: Uint8Array, from: string, to: string): Uint8Array<ArrayBuffer> {
  return lp("sumshare/2 share", session, from, to);
}

/** Seals `shares` from `from` to `to` under `key`. */
export async function sealShares(
  key: CryptoKey,
  session: Uint8Array,
  from: string,
  to: string,
  shares: SharePair,
): Promise<Uint8Array> {
  if (shares.mask.length !== SHARE_WORDS || shares.self.length !== SHARE_WORDS) {
    throw new RangeError(`Cannot seal shares: each share is ${SHARE_WORDS} elements`);
  }
  const plaintext = concat(writeElements(shares.mask), writeElements(shares.self));
  return new Uint8Array(
    await crypto.subtle.encrypt(
      { name: "AES-GCM", iv: NONCE, additionalData: aad(session, from, to) },
      key,
      plaintext,
    ),
  );
}

/** Opens what `from` sealed to `to`; throws SealError if it does not open or is malformed. */
export async function openShares(
  key: CryptoKey,
  session: Uint8Array,
  from: string,
  to: string,
  sealed: Uint8Array,
): Promise<SharePair> {
  let plaintext: Uint8Array;
  try {
    plaintext = new Uint8Array(
      await crypto.subtle.decrypt(
        { name: "AES-GCM", iv: NONCE, additionalData: aad(session, from, to) },
        key,
        sealed as Uint8Array<ArrayBuffer>,
      ),
    );
  } catch (cause) {
    throw new SealError(`Sealed share from ${from} does not open`, { cause });
  }
  const mask = readElements(plaintext.subarray(0, 8 * SHARE_WORDS), SHARE_WORDS);
  const self = readElements(plaintext.subarray(8 * SHARE_WORDS), SHARE_WORDS);
  if (!mask || !self) {
    throw new SealError(`Sealed share from ${from} does not hold field elements`);
  }
  return { mask, self };
}
