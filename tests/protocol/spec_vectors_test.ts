/**
 * The test vectors of docs/protocol.md §15, recomputed with the project's own
 * functions from the inputs the document prints. The vectors are read out of
 * the document itself (fenced blocks marked `vector NAME` holding `key: value`
 * lines), so the document and the code cannot drift apart: a changed byte in
 * either turns a test red. Where the document states a rule in words (the
 * counter block, the 52-bit candidate, HKDF, AES-GCM), the rule is also
 * applied here with plain Web Crypto and compared, so the text is checked as
 * well as the code.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  importPublicKey,
  pairwiseSeed,
  sealingKey,
  sharedSecret,
} from "../../lib/crypto/agreement.ts";
import { concat, fromHex, lp } from "../../lib/crypto/bytes.ts";
import { rebuildMaskKey } from "../../lib/crypto/mask_key.ts";
import { openShares, sealShares } from "../../lib/crypto/seal.ts";
import { combineSecret, splitSecret } from "../../lib/crypto/secret_sharing.ts";
import { sign, signingInput } from "../../lib/crypto/signing.ts";
import { toBase64, toHex } from "../../lib/encoding.ts";
import { add, addSegmentsInto, fromResidues, mul, P, P2, P3 } from "../../lib/field.ts";
import { applyMask } from "../../lib/crypto/masks.ts";
import { decodeTotals, encodeInput, parseQuery, vectorLayout } from "../../lib/query.ts";
import { FieldStream } from "../../lib/prg.ts";
import {
  attestedProducts,
  challengeProducts,
  challengeSeed,
} from "../../lib/crypto/linear_check.ts";
import {
  attestFields,
  confirmFields,
  consistencyFields,
  doneFields,
  inputFields,
  inviteFields,
  joinFields,
  linearCheckSeed,
  seedCommitment,
  startHash,
} from "../../lib/protocol/transcript.ts";
import { shapeOf } from "../../lib/protocol/terms.ts";
import { releasedSigningInput } from "../../lib/service/released.ts";
import { vectorDigest } from "../../lib/crypto/digest.ts";
import {
  neighbourLists,
  permutation,
  positionKey,
  setDigest,
  window,
  windowBitmap,
  windowMembers,
} from "../../lib/protocol/graph.ts";
import { bitmapMembers, partnerBitmap } from "../../lib/protocol/partners.ts";
import { encodeFrame, FrameDecoder } from "../../lib/wire/frame.ts";
import {
  decodeChunk,
  decodeMessage,
  encodeChunk,
  encodeMessage,
  type Terms,
  termsBytes,
  writeElements,
} from "../../lib/wire/messages.ts";

const DOC = new URL("../../docs/protocol.md", import.meta.url);
const ECDH = { name: "ECDH", namedCurve: "P-256" } as const;
const ECDSA = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
const utf8 = (text: string) => new TextEncoder().encode(text);

/** Every `vector NAME` block of the document: name → key → value. */
function readVectors(text: string): Map<string, Map<string, string>> {
  const vectors = new Map<string, Map<string, string>>();
  const block = /^```vector ([a-z0-9-]+)\n([\s\S]*?)^```$/gm;
  for (const [, name, body] of text.matchAll(block)) {
    assert.ok(!vectors.has(name!), `vector ${name} appears twice`);
    const entries = new Map<string, string>();
    let last: string | undefined;
    for (const line of body!.split("\n")) {
      if (line === "") continue;
      if (line.startsWith("  ")) {
        assert.ok(last !== undefined, `vector ${name}: a continuation line comes first`);
        entries.set(last, entries.get(last)! + line.trim());
        continue;
      }
      const m = /^([a-z0-9_]+|[a-zA-Z]+): (.*)$/.exec(line);
      assert.ok(m, `vector ${name}: cannot read line ${JSON.stringify(line)}`);
      assert.ok(!entries.has(m[1]!), `vector ${name}: key ${m[1]} twice`);
      entries.set(m[1]!, m[2]!);
      last = m[1]!;
    }
    vectors.set(name!, entries);
  }
  return vectors;
}

const vectors = readVectors(await Deno.readTextFile(DOC));

/** The named vector, with accessors that fail on a missing key. */
function vector(name: string) {
  const entries = vectors.get(name);
  if (!entries) throw new Error(`docs/protocol.md has no vector ${name}`);
  const text = (key: string): string => {
    const value = entries.get(key);
    if (value === undefined) throw new Error(`vector ${name} has no ${key}`);
    return value;
  };
  return {
    text,
    hex: (key: string) => fromHex(text(key)),
    int: (key: string) => {
      const value = Number(text(key));
      assert.ok(Number.isSafeInteger(value), `vector ${name}: ${key} is not an integer`);
      return value;
    },
    list: (key: string) => text(key).split(", "),
    numbers: (key: string) =>
      text(key).split(", ").map((item) => {
        const value = Number(item);
        assert.ok(Number.isSafeInteger(value), `vector ${name}: ${key} has ${item}`);
        return value;
      }),
  };
}

/** PKCS#8 PrivateKeyInfo of a P-256 ECPrivateKey holding only d (RFC 5915, no public key). */
const PKCS8_PREFIX = fromHex(
  "3041020100301306072a8648ce3d020106082a8648ce3d030107042730250201010420",
);

/** An ECDH key pair from a fixed private scalar; Web Crypto computes the public point. */
async function importScalar(d: Uint8Array): Promise<{ key: CryptoKey; publicKey: Uint8Array }> {
  const key = await crypto.subtle.importKey("pkcs8", concat(PKCS8_PREFIX, d), ECDH, true, [
    "deriveBits",
  ]);
  const jwk = await crypto.subtle.exportKey("jwk", key);
  const raw = (b64url: string) =>
    Uint8Array.from(
      atob(b64url.replace(/-/g, "+").replace(/_/g, "/").padEnd(44, "=")),
      (c) => c.charCodeAt(0),
    );
  return { key, publicKey: concat(Uint8Array.of(0x04), raw(jwk.x!), raw(jwk.y!)) };
}

/** The candidate rule of §9.6, spelled out: low 52 bits of each 8-byte group read as u64 LE. */
function candidates(keystream: Uint8Array): bigint[] {
  const view = new DataView(keystream.buffer, keystream.byteOffset, keystream.byteLength);
  const out: bigint[] = [];
  for (let at = 0; at + 8 <= keystream.length; at += 8) {
    out.push(view.getBigUint64(at, true) & ((1n << 52n) - 1n));
  }
  return out;
}

async function hkdf(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey(
    "raw",
    ikm as Uint8Array<ArrayBuffer>,
    "HKDF",
    false,
    ["deriveBits"],
  );
  return new Uint8Array(
    await crypto.subtle.deriveBits(
      {
        name: "HKDF",
        hash: "SHA-256",
        salt: salt as Uint8Array<ArrayBuffer>,
        info: info as Uint8Array<ArrayBuffer>,
      },
      key,
      256,
    ),
  );
}

const MODULI: Record<string, number> = { p1: P, p2: P2, p3: P3 };

Deno.test("spec vectors: the document holds every vector it promises", () => {
  assert.deepEqual([...vectors.keys()].sort(), [
    "chunk-frame",
    "confirm-signing-input",
    "consistency-signing-input",
    "done-signing-input",
    "input-signing-input",
    "join-signing-input",
    "linear-check",
    "message-frame",
    "pairwise-seed",
    "prg-candidates",
    "prg-seed",
    "released-signing-input",
    "residue-layout",
    "sealed-share",
    "self-seed-commitment",
    "shamir",
    "sparse-graph",
    "start-hash",
    "terms-invite",
  ]);
});

Deno.test("spec vectors: sparse-graph — position keys, the permuted roster, windows, a view, setDigest", async () => {
  const v = vector("sparse-graph");
  const session = v.text("session");
  const hash = fromHex(v.text("start_hash"));
  const names = v.list("names");
  const k = v.int("neighbors");
  // The key input as §18.1 writes it, built by hand, then hashed.
  const input = lp("sumshare/2 position", fromHex(session), hash, "alice");
  assert.equal(toHex(input), v.text("key_input_alice"));
  assert.equal(toHex(signingInput("position", [fromHex(session), hash, "alice"])), toHex(input));
  const key = new Uint8Array(await crypto.subtle.digest("SHA-256", input));
  assert.equal(toHex(key), v.text("key_alice"));
  assert.equal(toHex(await positionKey(session, hash, "alice")), v.text("key_alice"));
  // The permuted roster: sorted by key bytewise (hex order is byte order).
  const keyed = await Promise.all(names.map(async (n) => ({
    n,
    hex: toHex(
      new Uint8Array(
        await crypto.subtle.digest("SHA-256", lp("sumshare/2 position", fromHex(session), hash, n)),
      ),
    ),
  })));
  const byHand = keyed.sort((a, b) => (a.hex < b.hex ? -1 : 1)).map((e) => e.n);
  const order = await permutation(session, hash, names);
  assert.deepEqual(order, v.list("order"));
  assert.deepEqual(byHand, order);
  // alice's sparse CONFIRM signs her place (§18.3): n and her position, as decimal text.
  const place = { size: order.length, position: order.indexOf("alice") };
  assert.deepEqual(place, { size: 10, position: 4 });
  const confirmInput = lp("sumshare/2 confirm", fromHex(session), hash, "10", "4");
  assert.equal(toHex(confirmInput), v.text("confirm_input_alice"));
  assert.equal(
    toHex(signingInput("confirm", confirmFields(session, hash, place))),
    v.text("confirm_input_alice"),
  );
  // Windows: q − K/2 … q + K/2 mod n, by hand and by the library.
  const lists = neighbourLists(order, k);
  for (const name of names) {
    const q = order.indexOf(name);
    const hand = Array.from(
      { length: k + 1 },
      (_, i) => order[(q - k / 2 + i + order.length) % order.length],
    );
    assert.deepEqual(hand, v.list(`window_${name}`), name);
    assert.deepEqual(lists.get(name), hand, name);
  }
  // alice's view of a set without heidi (the second of her window): bits 0, 2, 3, 4.
  const q = order.indexOf("alice");
  const positions = window(q, order.length, k);
  const members = new Set(positions.filter((p) => order[p] !== "heidi"));
  assert.equal(windowBitmap(positions, members), v.text("view_alice_without_heidi"));
  assert.equal(v.text("view_alice_without_heidi"), (0b11101).toString(16));
  assert.deepEqual(windowMembers("1d", positions), [...members]);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", utf8("alice,bob,carol")));
  assert.equal(toHex(digest), v.text("set_digest_alice_bob_carol"));
  assert.equal(toHex(await setDigest(["alice", "bob", "carol"])), toHex(digest));
});

Deno.test("spec vectors: prg-seed — AES-256-CTR counter block, candidates and elements", async () => {
  const v = vector("prg-seed");
  const seed = v.hex("seed");
  const counter = v.hex("counter_block_0");
  assert.equal(counter.length, 16);
  // The keystream as §9.6 states it: AES-256-CTR of zeros from counter block 0.
  const aes = await crypto.subtle.importKey(
    "raw",
    seed as Uint8Array<ArrayBuffer>,
    "AES-CTR",
    false,
    [
      "encrypt",
    ],
  );
  const keystream = new Uint8Array(
    await crypto.subtle.encrypt(
      { name: "AES-CTR", counter: counter as Uint8Array<ArrayBuffer>, length: 64 },
      aes,
      new Uint8Array(32),
    ),
  );
  assert.equal(toHex(keystream), v.text("keystream_32"));
  // The first 4 elements follow from those 32 bytes by the documented rule …
  const fromRule = candidates(keystream).filter((c) => c < BigInt(P)).map(Number);
  const expected = v.numbers("elements_p1");
  assert.deepEqual(fromRule, expected.slice(0, fromRule.length));
  // … and the project's FieldStream gives all of them.
  const stream = await FieldStream.fromSeed(seed);
  assert.deepEqual(Array.from(await stream.take(expected.length)), expected);

  // Far into the stream (past the first keystream stretch the PRG reads): counter block n is
  // 8 zero bytes and n as u64 big-endian, and elements continue from it.
  const farCounter = v.hex("counter_block_50000");
  const view = new DataView(farCounter.buffer, farCounter.byteOffset, 16);
  assert.equal(view.getBigUint64(0), 0n);
  assert.equal(view.getBigUint64(8, false), 50000n);
  const far = new Uint8Array(
    await crypto.subtle.encrypt(
      { name: "AES-CTR", counter: farCounter as Uint8Array<ArrayBuffer>, length: 64 },
      aes,
      new Uint8Array(32),
    ),
  );
  assert.equal(toHex(far), v.text("keystream_32_at_block_50000"));
  const farExpected = v.numbers("elements_p1_from_100000");
  assert.deepEqual(candidates(far).map(Number), farExpected);
  const again = await FieldStream.fromSeed(seed);
  await again.take(8); // read in two calls, so the stream's stretches start at other blocks
  await again.take(100000 - 8);
  assert.deepEqual(Array.from(await again.take(farExpected.length)), farExpected);
});

Deno.test("spec vectors: prg-candidates — 52-bit rule, rejection, one stream over segments", async () => {
  const v = vector("prg-candidates");
  const keystream = v.hex("keystream");
  let served = false;
  const stream = FieldStream.fromKeystream(() => {
    if (served) throw new Error("the vector's keystream ran out");
    served = true;
    return Promise.resolve(keystream.slice().buffer);
  });
  const drawn: number[] = [];
  for (const segment of v.list("segments")) {
    const [modulus, count] = segment.split(":");
    drawn.push(...await stream.take(Number(count), MODULI[modulus!]));
  }
  assert.deepEqual(drawn, v.numbers("elements"));
  // The same by the rule in words: each element is the next candidate below its modulus.
  const pool = candidates(keystream);
  const byRule: number[] = [];
  for (const segment of v.list("segments")) {
    const [modulus, count] = segment.split(":");
    const m = BigInt(MODULI[modulus!]!);
    for (let k = 0; k < Number(count); k++) {
      let c = pool.shift();
      while (c !== undefined && c >= m) c = pool.shift();
      assert.ok(c !== undefined, "the keystream ran out");
      byRule.push(Number(c));
    }
  }
  assert.deepEqual(byRule, v.numbers("elements"));
});

Deno.test("spec vectors: pairwise-seed — two key pairs and names to s_ij", async () => {
  const v = vector("pairwise-seed");
  const session = v.hex("session");
  const i = await importScalar(v.hex("mask_d_i"));
  const j = await importScalar(v.hex("mask_d_j"));
  assert.equal(toHex(i.publicKey), v.text("mask_public_i"));
  assert.equal(toHex(j.publicKey), v.text("mask_public_j"));
  const publicI = await importPublicKey(v.hex("mask_public_i"));
  const publicJ = await importPublicKey(v.hex("mask_public_j"));
  assert.equal(toHex(await sharedSecret(i.key, publicJ)), v.text("ecdh_x"));
  assert.equal(toHex(await sharedSecret(j.key, publicI)), v.text("ecdh_x"));
  const [nameI, nameJ] = [v.text("name_i"), v.text("name_j")];
  const [low, high] = nameI < nameJ ? [nameI, nameJ] : [nameJ, nameI];
  assert.equal(toHex(lp("sumshare/2 mask", low, high)), v.text("hkdf_info"));
  assert.equal(
    toHex(await hkdf(v.hex("ecdh_x"), session, v.hex("hkdf_info"))),
    v.text("seed"),
  );
  // Both ends, with the names either way round, get the documented seed.
  assert.equal(toHex(await pairwiseSeed(i.key, publicJ, session, nameI, nameJ)), v.text("seed"));
  assert.equal(toHex(await pairwiseSeed(j.key, publicI, session, nameJ, nameI)), v.text("seed"));
  const prg = await FieldStream.fromSeed(v.hex("seed"));
  const expected = v.numbers("prg_elements_p1");
  assert.deepEqual(Array.from(await prg.take(expected.length)), expected);
  // The hospital's path for a dropped peer: the rebuilt scalar is accepted for its own key only.
  await rebuildMaskKey(v.hex("mask_d_i"), v.hex("mask_public_i"));
  await assert.rejects(rebuildMaskKey(v.hex("mask_d_i"), v.hex("mask_public_j")));
});

Deno.test("spec vectors: join-signing-input — the exact bytes a join signature covers", async () => {
  const v = vector("join-signing-input");
  const session = v.text("session");
  const fields = joinFields(session, v.text("name"), v.hex("seal_public"), v.hex("mask_public"));
  const input = signingInput("join", fields);
  assert.equal(toHex(input), v.text("signing_input"));
  // A signature made by the project verifies, as 64-byte P1363 ECDSA/SHA-256, over those bytes.
  const pair = await crypto.subtle.generateKey(ECDSA, false, ["sign", "verify"]) as CryptoKeyPair;
  const signature = await sign(pair.privateKey, "join", fields);
  assert.equal(signature.length, 64);
  const documented = v.hex("signing_input") as Uint8Array<ArrayBuffer>;
  assert.ok(
    await crypto.subtle.verify(
      ECDSA,
      pair.publicKey,
      signature as Uint8Array<ArrayBuffer>,
      documented,
    ),
  );
});

Deno.test("spec vectors: sealed-share — key, nonce, AAD and plaintext to the sealed bytes", async () => {
  const v = vector("sealed-share");
  const session = v.hex("session");
  const [from, to] = [v.text("from"), v.text("to")];
  const a = await importScalar(v.hex("seal_d_from"));
  const b = await importScalar(v.hex("seal_d_to"));
  assert.equal(toHex(a.publicKey), v.text("seal_public_from"));
  assert.equal(toHex(b.publicKey), v.text("seal_public_to"));
  const shared = await sharedSecret(a.key, await importPublicKey(b.publicKey));
  assert.equal(toHex(shared), v.text("ecdh_x"));
  assert.equal(
    toHex(await sharedSecret(b.key, await importPublicKey(a.publicKey))),
    v.text("ecdh_x"),
  );
  assert.equal(toHex(lp("sumshare/2 seal", from, to)), v.text("hkdf_info"));
  assert.equal(toHex(await hkdf(shared, session, v.hex("hkdf_info"))), v.text("key"));
  assert.equal(toHex(lp("sumshare/2 share", session, from, to)), v.text("aad"));
  const mask = Float64Array.from(v.numbers("mask_share"));
  const self = Float64Array.from(v.numbers("self_share"));
  assert.equal(toHex(concat(writeElements(mask), writeElements(self))), v.text("plaintext"));

  const sealed = await sealShares(await sealingKey(shared, session, from, to), session, from, to, {
    mask,
    self,
  });
  assert.equal(toHex(sealed), v.text("sealed"));
  // The rule in words: AES-256-GCM under `key` with `nonce` and `aad` over `plaintext`.
  const raw = await crypto.subtle.importKey(
    "raw",
    v.hex("key") as Uint8Array<ArrayBuffer>,
    "AES-GCM",
    false,
    ["encrypt"],
  );
  const byRule = await crypto.subtle.encrypt(
    {
      name: "AES-GCM",
      iv: v.hex("nonce") as Uint8Array<ArrayBuffer>,
      additionalData: v.hex("aad") as Uint8Array<ArrayBuffer>,
    },
    raw,
    v.hex("plaintext") as Uint8Array<ArrayBuffer>,
  );
  assert.equal(toHex(new Uint8Array(byRule)), v.text("sealed"));
  // The recipient opens it with its own key; the reversed direction does not.
  const opened = await openShares(
    await sealingKey(shared, session, from, to),
    session,
    from,
    to,
    v.hex("sealed"),
  );
  assert.deepEqual(Array.from(opened.mask), Array.from(mask));
  assert.deepEqual(Array.from(opened.self), Array.from(self));
  await assert.rejects(
    openShares(await sealingKey(shared, session, to, from), session, to, from, v.hex("sealed")),
  );
});

Deno.test("spec vectors: shamir — a secret to its words and shares, and back", () => {
  const v = vector("shamir");
  const secret = v.hex("secret");
  const threshold = v.int("threshold");
  const points = v.numbers("points");
  const view = new DataView(secret.buffer, secret.byteOffset, secret.byteLength);
  const words = Array.from({ length: 8 }, (_, k) => view.getUint32(4 * k, true));
  assert.deepEqual(words, v.numbers("words"));
  // Degree T − 1 = 1 here: f_k(x) = w_k + a_k·x over GF(p1), with the documented a_k.
  assert.equal(threshold, 2);
  const coefficients = v.numbers("coefficients_1");
  const shares = points.map((x) => ({
    x,
    words: Float64Array.from(words, (w, k) => add(w, mul(coefficients[k]!, x))),
  }));
  shares.forEach((share, n) => {
    assert.deepEqual(Array.from(share.words), v.numbers(`share_${points[n]}`));
  });
  // Any T documented shares rebuild the secret, and all of them are consistent.
  const documented = points.map((x) => ({
    x,
    words: Float64Array.from(v.numbers(`share_${x}`)),
  }));
  for (let a = 0; a < documented.length; a++) {
    for (let b = a + 1; b < documented.length; b++) {
      const pair = [documented[a]!, documented[b]!];
      assert.equal(toHex(combineSecret(pair, threshold)), v.text("secret"));
    }
  }
  assert.equal(toHex(combineSecret(documented, threshold)), v.text("secret"));
  // A share off the polynomial is refused, not summed.
  const tampered = documented.map((s) => ({ x: s.x, words: Float64Array.from(s.words) }));
  tampered[2]!.words[0] = add(tampered[2]!.words[0]!, 1);
  assert.throws(() => combineSecret(tampered, threshold), { name: "InconsistentSharesError" });
  // The product's own split (fresh coefficients) shares the same words the same way.
  const fresh = splitSecret(secret, points, threshold);
  assert.equal(toHex(combineSecret(fresh.slice(1), threshold)), v.text("secret"));
});

/** The terms of the vector terms-invite. */
function inviteTerms(): Terms {
  const v = vector("terms-invite");
  const [joinMs, confirmMs, shareMs, inputMs, consistencyMs, unmaskMs] = v.numbers("deadlines");
  const mode = v.text("mode");
  assert.ok(mode === "nofn" || mode === "threshold");
  return {
    query: v.text("query"),
    scale: v.int("scale"),
    max: BigInt(v.text("max")),
    maxRows: v.int("maxRows"),
    mode,
    threshold: v.int("threshold"),
    minContributors: v.int("minContributors"),
    participants: v.int("participants"),
    dimension: v.int("dimension"),
    deadlines: {
      joinMs: joinMs!,
      confirmMs: confirmMs!,
      shareMs: shareMs!,
      inputMs: inputMs!,
      consistencyMs: consistencyMs!,
      unmaskMs: unmaskMs!,
    },
  };
}

Deno.test("spec vectors: terms-invite — canonical terms bytes and the invite signing input", () => {
  const v = vector("terms-invite");
  const terms = inviteTerms();
  // Terms a peer accepts: its query in canonical spelling (§4.4; the
  // spec-only implementation found this vector's `-10` refused by the product).
  const shape = shapeOf(terms);
  assert.ok(typeof shape !== "string", `the vector's terms are refused: ${shape}`);
  assert.equal(new TextDecoder().decode(termsBytes(terms)), v.text("terms_bytes"));
  assert.equal(
    toHex(signingInput("invite", inviteFields(v.text("session"), terms))),
    v.text("signing_input"),
  );
});

Deno.test("spec vectors: start-hash — the START transcript hash of §8.3", async () => {
  const v = vector("start-hash");
  assert.equal(v.text("terms"), "the terms of the vector terms-invite");
  const terms = inviteTerms();
  const session = v.text("session");
  // A PEM block around the stand-in DER bytes: startHash hashes the DER it decodes.
  const pem = (der: Uint8Array) =>
    `-----BEGIN CERTIFICATE-----\n${toBase64(der)}\n-----END CERTIFICATE-----\n`;
  const participants = v.list("names").map((name) => ({
    name,
    cert: pem(v.hex(`cert_der_${name}`)),
    sealKey: v.hex(`seal_key_${name}`),
    maskKey: v.hex(`mask_key_${name}`),
    signature: v.hex(`join_signature_${name}`),
  }));
  // §8.3 by hand: the lp fields in order, then SHA-256.
  const input = lp(
    "sumshare/2 start",
    fromHex(session),
    termsBytes(terms),
    ...participants.flatMap((p) => [
      p.name,
      v.hex(`cert_der_${p.name}`),
      p.sealKey,
      p.maskKey,
      p.signature,
    ]),
  );
  assert.equal(toHex(input), v.text("hash_input"));
  const byHand = new Uint8Array(await crypto.subtle.digest("SHA-256", input));
  assert.equal(toHex(byHand), v.text("start_hash"));
  assert.equal(toHex(await startHash(session, terms, participants)), v.text("start_hash"));
});

Deno.test("spec vectors: done-signing-input — the set as names, or a sparse round's setDigest", async () => {
  const v = vector("done-signing-input");
  const session = v.text("session");
  const hash = v.hex("start_hash");
  const set = v.list("set");
  const digest = v.text("result_digest");
  assert.equal(
    toHex(signingInput("done", doneFields(session, hash, set, digest))),
    v.text("signing_input"),
  );
  assert.equal(
    toHex(lp("sumshare/2 done", fromHex(session), hash, set.join(","), fromHex(digest))),
    v.text("signing_input"),
  );
  const sd = await setDigest(set);
  assert.equal(toHex(sd), v.text("set_digest"));
  assert.equal(
    toHex(signingInput("done", doneFields(session, hash, sd, digest))),
    v.text("sparse_signing_input"),
  );
});

Deno.test("spec vectors: input-signing-input — vector digest and the input signing input", async () => {
  const v = vector("input-signing-input");
  const vec = Float64Array.from(v.numbers("vector"));
  assert.equal(await vectorDigest(vec), v.text("digest"));
  // The digest in words: SHA-256 over the SHA-256 of the one f64le piece.
  const piece = new Uint8Array(8 * vec.length);
  vec.forEach((x, k) => new DataView(piece.buffer).setFloat64(8 * k, x, true));
  const inner = new Uint8Array(await crypto.subtle.digest("SHA-256", piece));
  assert.equal(
    toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", inner))),
    v.text("digest"),
  );
  assert.equal(v.text("seed_commit"), vector("self-seed-commitment").text("seed_commit"));
  // The partner bitmap in words: bit i of byte ⌊i/8⌋ (least significant first) for roster index i.
  const roster = v.list("roster");
  const members = v.list("partner_names");
  const bits = new Uint8Array(Math.ceil(roster.length / 8));
  for (const name of members) bits[roster.indexOf(name) >> 3]! |= 1 << (roster.indexOf(name) & 7);
  assert.equal(toHex(bits), v.text("partners"));
  assert.equal(partnerBitmap(roster, members), v.text("partners"));
  assert.deepEqual(bitmapMembers(v.text("partners"), roster), members);
  const fields = inputFields(v.text("session"), v.hex("start_hash"), {
    length: vec.length,
    digest: v.text("digest"),
    seedCommit: v.text("seed_commit"),
    partners: v.text("partners"),
  });
  assert.equal(toHex(signingInput("input", fields)), v.text("signing_input"));
});

Deno.test("spec vectors: self-seed-commitment — SHA-256 of the self-seed signing input", async () => {
  const v = vector("self-seed-commitment");
  const [session, name, seed] = [v.text("session"), v.text("name"), v.hex("seed")];
  // The hashed bytes in words: lp("sumshare/2 self-seed") ‖ lp(session) ‖ lp(name) ‖ lp(b).
  const spelled = lp("sumshare/2 self-seed", fromHex(session), name, seed);
  assert.equal(toHex(spelled), v.text("hash_input"));
  assert.equal(
    toHex(signingInput("self-seed", [fromHex(session), name, seed])),
    v.text("hash_input"),
  );
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", spelled));
  assert.equal(toHex(digest), v.text("seed_commit"));
  assert.equal(await seedCommitment(session, name, seed), v.text("seed_commit"));
});

Deno.test("spec vectors: consistency-signing-input — the set joined by commas", () => {
  const v = vector("consistency-signing-input");
  const fields = consistencyFields(v.text("session"), v.hex("start_hash"), v.list("set"));
  assert.equal(toHex(signingInput("consistency", fields)), v.text("signing_input"));
});

Deno.test("spec vectors: message-frame — a message's JSON to its frame and back", () => {
  const v = vector("message-frame");
  const payload = concat(Uint8Array.of(0x01), utf8(v.text("json")));
  const frame = encodeFrame(encodeMessage(decodeMessage(payload)));
  assert.equal(toHex(frame), v.text("frame"));
  const decoder = new FrameDecoder();
  decoder.push(v.hex("frame"));
  assert.equal(toHex(decoder.next()!), toHex(payload));
  assert.equal(decoder.atBoundary, true);
});

Deno.test("spec vectors: chunk-frame — elements as binary64 little-endian after the index", () => {
  const v = vector("chunk-frame");
  const elements = Float64Array.from(v.numbers("elements"));
  const frame = encodeFrame(encodeChunk(v.int("index"), elements));
  assert.equal(toHex(frame), v.text("frame"));
  const chunk = decodeChunk(v.hex("frame").subarray(4));
  assert.equal(chunk.index, v.int("index"));
  assert.deepEqual(Array.from(chunk.data), Array.from(elements));
});

Deno.test("spec vectors: residue-layout — components, residues, segments, sum and CRT", async () => {
  const v = vector("residue-layout");
  const query = parseQuery(v.text("query"), v.int("scale"));
  const layout = vectorLayout(query, {
    max: BigInt(v.text("max")),
    maxRows: v.int("maxRows"),
    participants: v.int("participants"),
  });
  assert.equal(layout.dimension, v.int("dimension"));
  const names = new Map<number, string>([[P, "p1"], [P2, "p2"], [P3, "p3"]]);
  assert.deepEqual(
    layout.segments.map((s) => `${names.get(s.modulus)}:${s.length}`),
    v.list("segments"),
  );
  const where = (i: number) => `row ${i + 1}`;
  const encode = (key: string) =>
    encodeInput(query, { values: Float64Array.from(v.numbers(key)), where }, {
      scale: v.int("scale"),
      layout,
    });
  const a = encode("input_a");
  const b = encode("input_b");
  assert.deepEqual(Array.from(a), v.numbers("elements_a"));
  assert.deepEqual(Array.from(b), v.numbers("elements_b"));
  const sum = Float64Array.from(a);
  addSegmentsInto(sum, b, layout.segments);
  assert.deepEqual(Array.from(sum), v.numbers("sum"));
  const totals = v.list("totals").map(BigInt);
  assert.deepEqual(decodeTotals(layout, sum), totals);
  // The totals in words: Σx, Σx², rows of both inputs, and Σx² rebuilt from its two residues.
  const rows = [...v.numbers("input_a"), ...v.numbers("input_b")].map(BigInt);
  assert.deepEqual(totals, [
    rows.reduce((t, x) => t + x, 0n),
    rows.reduce((t, x) => t + x * x, 0n),
    BigInt(rows.length),
  ]);
  assert.equal(fromResidues([sum[1]!, sum[2]!]), totals[1]);
  // PRG(seed) over the layout: one stream, each segment drawn against its own modulus.
  const mask = new Float64Array(layout.dimension);
  await applyMask(mask, v.hex("seed"), 1, layout.segments);
  assert.deepEqual(Array.from(mask), v.numbers("mask"));
});

Deno.test("spec vectors: linear-check — challenge seed, r over the segments, exact values, attest input", async () => {
  const v = vector("linear-check");
  const session = v.text("session");
  const hash = v.hex("start_hash");
  const set = v.list("set");
  const result = Float64Array.from(v.numbers("result"));
  assert.deepEqual([...result], vector("residue-layout").numbers("sum"));
  assert.equal(await vectorDigest(result), v.text("result_digest"));
  // The hashed bytes in words: DONE's fields under the purpose "linear-check".
  const input = lp(
    "sumshare/2 linear-check",
    fromHex(session),
    hash,
    set.join(","),
    v.hex("result_digest"),
  );
  assert.equal(toHex(input), v.text("hash_input"));
  const seed = new Uint8Array(await crypto.subtle.digest("SHA-256", input));
  assert.equal(toHex(seed), v.text("seed"));
  assert.equal(
    toHex(await linearCheckSeed(session, hash, set, v.text("result_digest"))),
    v.text("seed"),
  );
  // r: one stream, each segment's elements by rejection against its own modulus.
  const segments: { start: number; length: number; modulus: number }[] = [];
  let start = 0;
  for (const segment of v.list("segments")) {
    const [name, length] = segment.split(":");
    segments.push({ start, length: Number(length), modulus: MODULI[name!]! });
    start += Number(length);
  }
  const stream = await FieldStream.fromSeed(seed);
  const r: number[] = [];
  for (const { length, modulus } of segments) r.push(...await stream.take(length, modulus));
  assert.deepEqual(r, v.numbers("challenge"));
  // The second challenge: its seed hashes the first, its draws are made the same way.
  const input2 = lp("sumshare/2 linear-check 2", seed);
  assert.equal(toHex(input2), v.text("seed_2_input"));
  const seed2 = new Uint8Array(await crypto.subtle.digest("SHA-256", input2));
  assert.equal(toHex(seed2), v.text("seed_2"));
  assert.equal(toHex(await challengeSeed(seed, 1)), v.text("seed_2"));
  const stream2 = await FieldStream.fromSeed(seed2);
  const r2: number[] = [];
  for (const { length, modulus } of segments) r2.push(...await stream2.take(length, modulus));
  assert.deepEqual(r2, v.numbers("challenge_2"));
  // a_{j,k} = Σ r_{j,i}·y_i mod m_k, exactly (BigInt here; the library splits into 26-bit
  // halves): challenge 0's per segment, then challenge 1's.
  const y = Float64Array.from(v.numbers("masked"));
  const exact = [r, r2].flatMap((challenge) =>
    segments.map(({ start, length, modulus }) => {
      let total = 0n;
      for (let i = start; i < start + length; i++) total += BigInt(challenge[i]!) * BigInt(y[i]!);
      return Number(total % BigInt(modulus));
    })
  );
  assert.deepEqual(exact, v.numbers("values"));
  assert.deepEqual(await attestedProducts(seed, y, segments), v.numbers("values"));
  assert.equal(
    toHex(signingInput("attest", attestFields(session, hash, v.text("result_digest"), exact))),
    v.text("attest_signing_input"),
  );
});

Deno.test("the linear check's values are exact for elements near the moduli and long segments", async () => {
  // Against BigInt, with elements at the top of each field, over more than one draw step.
  const seed = new Uint8Array(32).fill(7);
  const length = 70_000;
  for (const modulus of [P, P2, P3]) {
    const y = Float64Array.from({ length }, (_, i) => modulus - 1 - (i % 3));
    const stream = await FieldStream.fromSeed(seed);
    const r = await stream.take(length, modulus);
    let total = 0n;
    for (let i = 0; i < length; i++) total += BigInt(r[i]!) * BigInt(y[i]!);
    assert.deepEqual(
      await challengeProducts(seed, y, [{ start: 0, length, modulus }]),
      [Number(total % BigInt(modulus))],
    );
  }
});

Deno.test("spec vectors: confirm-signing-input and released-signing-input", () => {
  const c = vector("confirm-signing-input");
  const session = c.text("session");
  const hash = c.hex("start_hash");
  assert.equal(
    toHex(signingInput("confirm", confirmFields(session, hash))),
    c.text("signing_input"),
  );
  assert.equal(toHex(lp("sumshare/2 confirm", fromHex(session), hash)), c.text("signing_input"));
  const r = vector("released-signing-input");
  const release = {
    session: r.text("session"),
    startHash: r.hex("start_hash"),
    variable: r.text("variable"),
    query: r.text("query"),
    set: r.list("set"),
    resultDigest: r.text("result_digest"),
    statistics: r.text("statistics"),
  };
  assert.equal(toHex(releasedSigningInput(release)), r.text("signing_input"));
  const byHand = (statistics: string) =>
    toHex(lp(
      "sumshare/2 released",
      fromHex(release.session),
      release.startHash,
      release.variable,
      release.query,
      release.set.join(","),
      fromHex(release.resultDigest),
      statistics,
    ));
  assert.equal(byHand(release.statistics), r.text("signing_input"));
  assert.equal(
    toHex(releasedSigningInput({ ...release, statistics: undefined })),
    r.text("signing_input_without_statistics"),
  );
  assert.equal(byHand(""), r.text("signing_input_without_statistics"));
});
