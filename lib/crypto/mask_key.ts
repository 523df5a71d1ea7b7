/**
 * A mask private key as a shareable 32-byte secret, and back. The scalar d
 * is exported as JWK `d` (32 bytes big-endian); rebuilding imports it as
 * PKCS#8 without the public key, lets Web Crypto recompute the public point,
 * and accepts the key only when that point is the advertised maskKey — the
 * hospital must never remove a mask computed from a key the peer did not
 * advertise (a wrong sum), and shares that rebuild to another key are
 * evidence of tampering.
 *
 * @module
 */

import { bytesEqual, concat } from "./bytes.ts";
import { CURVE_N } from "./agreement.ts";

const ECDH = { name: "ECDH", namedCurve: "P-256" } as const;

/** PKCS#8 PrivateKeyInfo for a P-256 ECPrivateKey holding only d (RFC 5915, no public key). */
const PKCS8_PREFIX = Uint8Array.from([
  0x30,
  0x41,
  0x02,
  0x01,
  0x00,
  0x30,
  0x13,
  0x06,
  0x07,
  0x2a,
  0x86,
  0x48,
  0xce,
  0x3d,
  0x02,
  0x01,
  0x06,
  0x08,
  0x2a,
  0x86,
  0x48,
  0xce,
  0x3d,
  0x03,
  0x01,
  0x07,
  0x04,
  0x27,
  0x30,
  0x25,
  0x02,
  0x01,
  0x01,
  0x04,
  0x20,
]);

/** Raised when a rebuilt scalar is not the advertised mask key. */
export class MaskKeyError extends Error {
  override name = "MaskKeyError";
}

/** A JWK field (base64url, no padding, from Web Crypto's own export). */
function fromBase64Url(text: string): Uint8Array {
  return Uint8Array.fromBase64(text, { alphabet: "base64url", lastChunkHandling: "loose" });
}

/** The private scalar d of an extractable ECDH P-256 key, 32 bytes big-endian. */
export async function exportScalar(privateKey: CryptoKey): Promise<Uint8Array> {
  const jwk = await crypto.subtle.exportKey("jwk", privateKey);
  const d = fromBase64Url(jwk.d ?? "");
  if (d.length !== 32) throw new RangeError("Cannot export scalar: not a P-256 private key");
  return d;
}

function publicFromJwk(jwk: JsonWebKey): Uint8Array {
  return concat(Uint8Array.of(0x04), fromBase64Url(jwk.x ?? ""), fromBase64Url(jwk.y ?? ""));
}

/**
 * Rebuilds the ECDH private key from scalar `d` and returns it only if its
 * public key is `advertised` (65 bytes); otherwise throws MaskKeyError.
 */
export async function rebuildMaskKey(d: Uint8Array, advertised: Uint8Array): Promise<CryptoKey> {
  let n = 0n;
  for (const b of d) n = (n << 8n) | BigInt(b);
  if (d.length !== 32 || n < 1n || n >= CURVE_N) {
    throw new MaskKeyError("Rebuilt mask key is not a P-256 scalar");
  }
  let key: CryptoKey;
  let recomputed: Uint8Array;
  try {
    key = await crypto.subtle.importKey("pkcs8", concat(PKCS8_PREFIX, d), ECDH, true, [
      "deriveBits",
    ]);
    recomputed = publicFromJwk(await crypto.subtle.exportKey("jwk", key));
  } catch (cause) {
    throw new MaskKeyError("Rebuilt mask key does not import", { cause });
  }
  if (!bytesEqual(recomputed, advertised)) {
    throw new MaskKeyError("Rebuilt mask key does not match the advertised mask key");
  }
  return key;
}
