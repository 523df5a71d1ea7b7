/**
 * Unit tests of lib/crypto/: exact signing-input bytes, signatures bound to
 * purpose and fields, sealing (round trip; tampering, wrong associated data
 * and the other direction fail), pairwise seeds, point validation, Shamir
 * sharing of a 32-byte secret (any T of n rebuild it, T − 1 do not,
 * inconsistent shares are caught), mask-key rebuild checked against the
 * advertised key, and masks that cancel.
 *
 * @module
 */

import assert from "node:assert/strict";
import { ECDSA_P256 } from "../../lib/pki.ts";
import { lp } from "../../lib/crypto/bytes.ts";
import { sign, signingInput, verify } from "../../lib/crypto/signing.ts";
import {
  generateSessionKeys,
  importPublicKey,
  InvalidKeyError,
  isPublicKey,
  pairwiseSeed,
  sealingKey,
  sharedSecret,
} from "../../lib/crypto/agreement.ts";
import { openShares, SealError, sealShares } from "../../lib/crypto/seal.ts";
import {
  combineSecret,
  InconsistentSharesError,
  splitSecret,
} from "../../lib/crypto/secret_sharing.ts";
import { exportScalar, MaskKeyError, rebuildMaskKey } from "../../lib/crypto/mask_key.ts";
import { applyMask, pairSign } from "../../lib/crypto/masks.ts";
import { P as P1, P2, P3, randomFieldElement } from "../../lib/field.ts";

const session = Uint8Array.from({ length: 16 }, (_, i) => i);

Deno.test("crypto: signing input is lp(label) ‖ lp(field)… byte for byte", () => {
  const input = signingInput("confirm", [Uint8Array.of(0xab, 0xcd), "p1"]);
  const label = new TextEncoder().encode("sumshare/2 confirm");
  assert.deepEqual(
    [...input],
    [0, 0, 0, label.length, ...label, 0, 0, 0, 2, 0xab, 0xcd, 0, 0, 0, 2, 0x70, 0x31],
  );
  assert.deepEqual(lp(""), new Uint8Array(4));
});

Deno.test("crypto: a signature verifies only for its key, purpose and fields", async () => {
  const keys = await crypto.subtle.generateKey(ECDSA_P256, false, ["sign", "verify"]);
  const other = await crypto.subtle.generateKey(ECDSA_P256, false, ["sign", "verify"]);
  const sig = await sign(keys.privateKey, "consistency", [session, "a,b"]);
  assert.equal(sig.length, 64);
  assert.ok(await verify(keys.publicKey, sig, "consistency", [session, "a,b"]));
  assert.ok(!(await verify(keys.publicKey, sig, "confirm", [session, "a,b"])));
  assert.ok(!(await verify(keys.publicKey, sig, "consistency", [session, "a,c"])));
  // Field boundaries matter: ("a,b") is not ("a", ",b").
  assert.ok(!(await verify(keys.publicKey, sig, "consistency", [session, "a", ",b"])));
  assert.ok(!(await verify(other.publicKey, sig, "consistency", [session, "a,b"])));
  assert.ok(!(await verify(keys.publicKey, sig.subarray(0, 63), "consistency", [session, "a,b"])));
});

function sharePair() {
  return {
    mask: Float64Array.from({ length: 8 }, randomFieldElement),
    self: Float64Array.from({ length: 8 }, randomFieldElement),
  };
}

Deno.test("crypto: sealed shares open for the recipient and fail when anything changes", async () => {
  const a = await generateSessionKeys();
  const b = await generateSessionKeys();
  const aPub = await importPublicKey(a.seal.publicKey);
  const bPub = await importPublicKey(b.seal.publicKey);
  const atA = await sharedSecret(a.seal.privateKey, bPub);
  const atB = await sharedSecret(b.seal.privateKey, aPub);
  assert.deepEqual(atA, atB);
  const pair = sharePair();
  const sealKey = await sealingKey(atA, session, "alice", "bob");
  const sealed = await sealShares(sealKey, session, "alice", "bob", pair);
  assert.equal(sealed.length, 144);
  const openKey = await sealingKey(atB, session, "alice", "bob");
  assert.deepEqual(await openShares(openKey, session, "alice", "bob", sealed), pair);

  const tampered = Uint8Array.from(sealed);
  tampered[7]! ^= 1;
  await assert.rejects(openShares(openKey, session, "alice", "bob", tampered), SealError);
  // Wrong associated data: other sender, recipient or session.
  await assert.rejects(openShares(openKey, session, "carol", "bob", sealed), SealError);
  await assert.rejects(openShares(openKey, session, "alice", "carol", sealed), SealError);
  const otherSession = Uint8Array.from(session).fill(session[0]! ^ 1, 0, 1);
  await assert.rejects(openShares(openKey, otherSession, "alice", "bob", sealed), SealError);
  // The reverse direction has its own key.
  const reverse = await sealingKey(atB, session, "bob", "alice");
  await assert.rejects(openShares(reverse, session, "alice", "bob", sealed), SealError);
});

Deno.test("crypto: the pairwise seed is the same at both ends and bound to the session", async () => {
  const a = await generateSessionKeys();
  const b = await generateSessionKeys();
  const aMask = await importPublicKey(a.mask.publicKey);
  const bMask = await importPublicKey(b.mask.publicKey);
  const ab = await pairwiseSeed(a.mask.privateKey, bMask, session, "alice", "bob");
  const ba = await pairwiseSeed(b.mask.privateKey, aMask, session, "bob", "alice");
  assert.deepEqual(ab, ba);
  const other = await pairwiseSeed(a.mask.privateKey, bMask, new Uint8Array(16), "alice", "bob");
  assert.notDeepEqual(ab, other);
  // The seal keys give a different secret: rebuilding a mask key opens nothing sealed.
  const sealed = await sharedSecret(a.seal.privateKey, await importPublicKey(b.seal.publicKey));
  const masked = await sharedSecret(a.mask.privateKey, bMask);
  assert.notDeepEqual(sealed, masked);
});

Deno.test("crypto: a public key off the curve is refused", async () => {
  const { seal } = await generateSessionKeys();
  assert.ok(isPublicKey(seal.publicKey));
  const bad = Uint8Array.from(seal.publicKey);
  bad[40]! ^= 1;
  assert.ok(!isPublicKey(bad));
  assert.ok(!isPublicKey(seal.publicKey.subarray(0, 64)));
  await assert.rejects(importPublicKey(bad), InvalidKeyError);
});

function subsets(n: number, k: number): number[][] {
  if (k === 0) return [[]];
  if (n < k) return [];
  return [...subsets(n - 1, k - 1).map((s) => [...s, n - 1]), ...subsets(n - 1, k)];
}

Deno.test("crypto: any T of n shares rebuild the secret; T − 1 do not", () => {
  const secret = crypto.getRandomValues(new Uint8Array(32));
  const n = 6;
  const t = 4;
  const xs = [1, 2, 3, 4, 5, 6];
  const shares = splitSecret(secret, xs, t);
  for (const subset of subsets(n, t)) {
    assert.deepEqual(combineSecret(subset.map((i) => shares[i]!), t), secret);
  }
  // All n together: the extra shares lie on the same polynomials.
  assert.deepEqual(combineSecret(shares, t), secret);
  for (const subset of subsets(n, t - 1)) {
    const fewer = subset.map((i) => shares[i]!);
    assert.throws(() => combineSecret(fewer, t), InconsistentSharesError);
    // Interpolating T − 1 points as if they were enough gives another value (or none).
    let rebuilt: Uint8Array | undefined;
    try {
      rebuilt = combineSecret(fewer, t - 1);
    } catch (error) {
      assert.ok(error instanceof InconsistentSharesError);
    }
    assert.notDeepEqual(rebuilt, secret);
  }
});

Deno.test("crypto: inconsistent shares are caught", () => {
  const secret = crypto.getRandomValues(new Uint8Array(32));
  const shares = splitSecret(secret, [1, 2, 3, 4, 5], 3);
  const bad = shares.map((s) => ({ x: s.x, words: Float64Array.from(s.words) }));
  bad[4]!.words[2] = (bad[4]!.words[2]! + 1) % 4503599627370449;
  // Among more than T shares, a lying one is caught.
  assert.throws(() => combineSecret(bad, 3), InconsistentSharesError);
  // With exactly T, the lie almost surely shows as a word ≥ 2^32.
  assert.throws(() => combineSecret([bad[0]!, bad[1]!, bad[4]!], 3), InconsistentSharesError);
  assert.throws(
    () => combineSecret([shares[0]!, shares[0]!, shares[1]!], 3),
    InconsistentSharesError,
  );
});

Deno.test("crypto: shares in any order rebuild the same secret, and weights reused from a good rebuild still catch a lie", () => {
  const secret = crypto.getRandomValues(new Uint8Array(32));
  const shares = splitSecret(secret, [3, 1, 4, 5, 2, 6], 3);
  assert.deepEqual(combineSecret(shares, 3), secret);
  assert.deepEqual(combineSecret([...shares].reverse(), 3), secret);
  // The same points again (their weights are now known), one share altered: still refused.
  for (const liar of [0, 5]) {
    const bad = shares.map((s) => ({ x: s.x, words: Float64Array.from(s.words) }));
    bad[liar]!.words[0] = (bad[liar]!.words[0]! + 1) % 4503599627370449;
    assert.throws(() => combineSecret(bad, 3), InconsistentSharesError, `liar ${liar}`);
  }
});

Deno.test("crypto: a mask key rebuilt from its shares is accepted only for its advertised key", async () => {
  const a = await generateSessionKeys();
  const b = await generateSessionKeys();
  const d = await exportScalar(a.mask.privateKey);
  const shares = splitSecret(d, [1, 2, 3, 4], 3);
  const rebuilt = await rebuildMaskKey(combineSecret(shares.slice(1), 3), a.mask.publicKey);
  const bMask = await importPublicKey(b.mask.publicKey);
  assert.deepEqual(
    await pairwiseSeed(rebuilt, bMask, session, "a", "b"),
    await pairwiseSeed(a.mask.privateKey, bMask, session, "a", "b"),
  );
  await assert.rejects(rebuildMaskKey(d, b.mask.publicKey), MaskKeyError);
  await assert.rejects(rebuildMaskKey(new Uint8Array(32), a.mask.publicKey), MaskKeyError);
  await assert.rejects(
    rebuildMaskKey(new Uint8Array(32).fill(0xff), a.mask.publicKey),
    MaskKeyError,
  );
});

Deno.test("crypto: a pair's masks cancel and a self mask comes off again", async () => {
  const x = Float64Array.of(5, 0, 4503599627370448);
  const y = Float64Array.from(x);
  const seed = crypto.getRandomValues(new Uint8Array(32));
  const whole = [{ start: 0, length: 3, modulus: P1 }];
  await applyMask(y, seed, pairSign("a", "b"), whole);
  assert.notDeepEqual(y, x);
  await applyMask(y, seed, pairSign("b", "a"), whole);
  assert.deepEqual(y, x);
});

Deno.test("crypto: a mask over segments is one stream, each segment drawn below its own modulus", async () => {
  // p1, p2, p1, p3 segments; the expected mask is drawn here from the raw
  // keystream by the rule (next 52-bit candidate below the segment's modulus).
  const segments = [
    { start: 0, length: 3, modulus: P1 },
    { start: 3, length: 5, modulus: P2 },
    { start: 8, length: 2, modulus: P1 },
    { start: 10, length: 4, modulus: P3 },
  ];
  const seed = crypto.getRandomValues(new Uint8Array(32));
  const y = new Float64Array(14);
  await applyMask(y, seed, 1, segments);
  const key = await crypto.subtle.importKey("raw", seed, "AES-CTR", false, ["encrypt"]);
  const stream = new Uint32Array(
    await crypto.subtle.encrypt(
      { name: "AES-CTR", counter: new Uint8Array(16), length: 64 },
      key,
      new Uint8Array(1024),
    ),
  );
  const expected: number[] = [];
  let at = 0;
  for (const { length, modulus } of segments) {
    for (let k = 0; k < length;) {
      const x = (stream[at + 1]! & 0xfffff) * 2 ** 32 + stream[at]!;
      at += 2;
      if (x < modulus) {
        expected.push(x);
        k++;
      }
    }
  }
  assert.deepEqual([...y], expected);
  assert.ok(
    segments.every((s) => y.subarray(s.start, s.start + s.length).every((v) => v < s.modulus)),
  );
  // Subtracting it again, per segment, gives zeros; a p2 element near p2 wraps modulo p2.
  const x = Float64Array.from({ length: 14 }, (_, k) => (k >= 3 && k < 8 ? P2 - 1 : k));
  const masked = Float64Array.from(x);
  await applyMask(masked, seed, 1, segments);
  for (const { start, length, modulus } of segments) {
    for (let k = start; k < start + length; k++) {
      assert.equal(BigInt(masked[k]!), (BigInt(x[k]!) + BigInt(expected[k]!)) % BigInt(modulus));
    }
  }
  await applyMask(masked, seed, -1, segments);
  assert.deepEqual(masked, x);
});

Deno.test("crypto: neighbourhood-sized sharings (52 points up to 10,000, T = 37) rebuild exactly and catch a lying extra share", () => {
  for (let round = 0; round < 4; round++) {
    const secret = crypto.getRandomValues(new Uint8Array(32));
    const points = new Set<number>();
    while (points.size < 52) {
      points.add(1 + (crypto.getRandomValues(new Uint32Array(1))[0]! % 10_000));
    }
    const shares = splitSecret(secret, [...points], 37);
    assert.deepEqual(combineSecret(shares, 37), secret);
    assert.deepEqual(combineSecret(shares.slice(10, 47), 37), secret);
    // A lie in any one share, base or extra, is refused (the base: as an inconsistent extra).
    const liar = round * 13;
    const bad = shares.map((s) => ({ x: s.x, words: Float64Array.from(s.words) }));
    bad[liar]!.words[round]! = (bad[liar]!.words[round]! + 1) % P1;
    assert.throws(() => combineSecret(bad, 37), InconsistentSharesError);
  }
});

Deno.test("crypto: a signing input of 10,000 participants' fields is built (no spread call overflows the stack)", async () => {
  // START's transcript at N = 10,000: 50,002 fields, 100,006 length-prefixed parts.
  const fields = Array.from({ length: 50_002 }, (_, i) => (i % 2 ? "peer" : new Uint8Array(65)));
  const input = signingInput("start", fields);
  assert.equal(input.length, 4 + "sumshare/2 start".length + 25_001 * (8 + 65 + 4));
  const participants = Array.from({ length: 12_000 }, (_, i) => `p${i}`);
  assert.equal((await sha256Of(signingInput("consistency", participants))).length, 32);
});

async function sha256Of(bytes: Uint8Array<ArrayBuffer>): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}
