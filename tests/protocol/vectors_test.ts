/**
 * The exact bytes of lib/crypto/ recomputed independently with node:crypto
 * from the brief's definitions (not from the code under test): the pairwise
 * mask seed, the directional sealing key and sealed share (AES-256-GCM, zero
 * nonce, the specified associated data and plaintext layout), and how a
 * 32-byte secret becomes 8 words shared over GF(p).
 *
 * @module
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createCipheriv, createECDH, hkdfSync } from "node:crypto";
import {
  generateSessionKeys,
  importPublicKey,
  pairwiseSeed,
  sealingKey,
  sharedSecret,
} from "../../lib/crypto/agreement.ts";
import { exportScalar } from "../../lib/crypto/mask_key.ts";
import { sealShares } from "../../lib/crypto/seal.ts";
import { splitSecret } from "../../lib/crypto/secret_sharing.ts";
import { randomFieldElement } from "../../lib/field.ts";

const P = 2n ** 52n - 47n;
const session = Buffer.from("00112233445566778899aabbccddeeff", "hex");

/** lp(x): u32 big-endian length, then x — written out again here on purpose. */
function lp(...fields: (string | Uint8Array)[]): Buffer {
  return Buffer.concat(fields.flatMap((f) => {
    const bytes = typeof f === "string" ? Buffer.from(f, "utf8") : Buffer.from(f);
    const length = Buffer.alloc(4);
    length.writeUInt32BE(bytes.length);
    return [length, bytes];
  }));
}

async function nodeEcdh(privateKey: CryptoKey, otherPublic: Uint8Array): Promise<Buffer> {
  const ecdh = createECDH("prime256v1");
  ecdh.setPrivateKey(Buffer.from(await exportScalar(privateKey)));
  return ecdh.computeSecret(Buffer.from(otherPublic));
}

Deno.test("vectors: the pairwise seed is HKDF-SHA256(ECDH x, session, lp(label) ‖ lp(min) ‖ lp(max))", async () => {
  const a = await generateSessionKeys();
  const b = await generateSessionKeys();
  const ikm = await nodeEcdh(a.mask.privateKey, b.mask.publicKey);
  const expected = Buffer.from(
    hkdfSync("sha256", ikm, session, lp("sumshare/2 mask", "alice", "bob"), 32),
  );
  const seed = await pairwiseSeed(
    a.mask.privateKey,
    await importPublicKey(b.mask.publicKey),
    session,
    "bob",
    "alice",
  );
  assert.deepEqual(Buffer.from(seed), expected);
});

Deno.test("vectors: a sealed share is AES-256-GCM(zero nonce, specified AAD) over 16 u64 LE elements", async () => {
  const a = await generateSessionKeys();
  const b = await generateSessionKeys();
  const mask = Float64Array.from({ length: 8 }, randomFieldElement);
  const self = Float64Array.from({ length: 8 }, randomFieldElement);
  const shared = await sharedSecret(a.seal.privateKey, await importPublicKey(b.seal.publicKey));
  const sealed = await sealShares(
    await sealingKey(shared, session, "alice", "bob"),
    session,
    "alice",
    "bob",
    { mask, self },
  );

  const ikm = await nodeEcdh(a.seal.privateKey, b.seal.publicKey);
  const key = Buffer.from(
    hkdfSync("sha256", ikm, session, lp("sumshare/2 seal", "alice", "bob"), 32),
  );
  const plaintext = Buffer.alloc(128);
  [...mask, ...self].forEach((x, k) => plaintext.writeBigUInt64LE(BigInt(x), 8 * k));
  const cipher = createCipheriv("aes-256-gcm", key, Buffer.alloc(12));
  cipher.setAAD(lp("sumshare/2 share", session, "alice", "bob"));
  const expected = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  assert.deepEqual(Buffer.from(sealed), expected);
});

Deno.test("vectors: word k of a secret is u32 LE of bytes 4k..4k+3, and f(0) = word", () => {
  const secret = crypto.getRandomValues(new Uint8Array(32));
  const shares = splitSecret(secret, [1, 2, 3], 3);
  const modInverse = (a: bigint) => {
    let [r, e, base] = [1n, P - 2n, ((a % P) + P) % P];
    for (; e > 0n; e >>= 1n, base = (base * base) % P) if (e & 1n) r = (r * base) % P;
    return r;
  };
  for (let k = 0; k < 8; k++) {
    // Lagrange at 0 through (1, y1), (2, y2), (3, y3), in BigInt.
    let word = 0n;
    for (const j of shares) {
      let w = 1n;
      for (const m of shares) {
        if (m !== j) w = (w * BigInt(-m.x) % P * modInverse(BigInt(j.x - m.x))) % P;
      }
      word = (word + w * BigInt(j.words[k]!)) % P;
    }
    word = (word + P) % P;
    assert.equal(word, BigInt(Buffer.from(secret).readUInt32LE(4 * k)));
  }
});
