/**
 * The codec's fast paths write and accept exactly what the straightforward
 * ones did (lib/wire/messages.ts): START assembled from cached entry texts is
 * byte for byte JSON.stringify of the whole message; native base64
 * (lib/encoding.ts `toBase64` and `fromCanonicalBase64`, which the codec
 * uses) writes what `btoa` wrote and accepts exactly the strings that decode
 * with `atob` and encode back to themselves; messages read by V8's parser
 * decode to what the strict reader makes of them, and what it refuses is
 * refused with its reason.
 *
 * @module
 */

import assert from "node:assert/strict";
import { fromCanonicalBase64, toBase64 } from "../../lib/encoding.ts";
import { ProtocolError } from "../../lib/errors.ts";
import {
  decodeMessage,
  encodeMessage,
  type Message,
  type MessageOf,
  type Participant,
} from "../../lib/wire/messages.ts";
import { parseStrictJson } from "../../lib/wire/strict_json.ts";
import { Rng } from "../rng.ts";

const encoder = new TextEncoder();

/** Base64 as it was written before the native encoder: `btoa` of the bytes as a binary string. */
function referenceBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/** Canonical base64 as it was read before: `atob`, kept only if it encodes back to `text`. */
function referenceFromBase64(text: string): Uint8Array | undefined {
  let bytes: Uint8Array;
  try {
    bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  } catch {
    return undefined;
  }
  return referenceBase64(bytes) === text ? bytes : undefined;
}

function bytes(rng: Rng, length: number): Uint8Array {
  return Uint8Array.from({ length }, () => rng.int(256));
}

/** A PEM-shaped text; the encoder does not look inside. */
function pem(rng: Rng): string {
  const body = toBase64(bytes(rng, rng.range(300, 700)));
  const lines = body.match(/.{1,64}/g)!.join("\n");
  return `-----BEGIN CERTIFICATE-----\n${lines}\n-----END CERTIFICATE-----\n`;
}

/** Text that JSON must escape or write as multi-byte UTF-8, now and then. */
function oddText(rng: Rng, base: string): string {
  const extras = ['"', "\\", "\n", "é", "😀", '"participants":[]', "\u2028", "\u0001"];
  return rng.int(4) === 0 ? `${base}${extras[rng.int(extras.length)]}` : base;
}

function roster(rng: Rng, size: number, positions: boolean): Participant[] {
  const names = new Set<string>();
  while (names.size < size) names.add(`peer-${rng.int(100_000)}`);
  return [...names].sort().map((name) => ({
    name: oddText(rng, name),
    cert: oddText(rng, pem(rng)),
    sealKey: bytes(rng, 65),
    maskKey: bytes(rng, 65),
    signature: bytes(rng, 64),
    ...(positions ? { position: rng.int(10_000) } : {}),
  }));
}

/** The encoding as it was written before the cache: the whole message through JSON.stringify. */
function reference(message: MessageOf<"start">): Uint8Array {
  const body = {
    v: 2,
    type: "start",
    session: message.session,
    participants: message.participants.map((p) => ({
      name: p.name,
      cert: p.cert,
      sealKey: referenceBase64(p.sealKey),
      maskKey: referenceBase64(p.maskKey),
      signature: referenceBase64(p.signature),
      ...(p.position === undefined ? {} : { position: p.position }),
    })),
    ...(message.rosterHash === undefined ? {} : { rosterHash: message.rosterHash }),
    ...(message.size === undefined ? {} : { size: message.size }),
  };
  const json = encoder.encode(JSON.stringify(body));
  const out = new Uint8Array(1 + json.length);
  out[0] = 1;
  out.set(json, 1);
  return out;
}

Deno.test("START from cached entries is byte-identical to encoding it whole", () => {
  for (let seed = 1; seed <= 40; seed++) {
    const rng = new Rng(seed);
    const sparse = rng.int(2) === 0;
    const all = roster(rng, rng.range(2, 60), sparse);
    // Windows share entry objects, as the hospital's are (the cache is hit).
    for (let w = 0; w < 5; w++) {
      const start = rng.int(all.length);
      const count = rng.range(Math.min(2, all.length), all.length);
      const participants = Array.from(
        { length: count },
        (_, i) => all[(start + i) % all.length]!,
      ).sort((a, b) => (a.name < b.name ? -1 : 1));
      const message: MessageOf<"start"> = {
        type: "start",
        session: oddText(rng, "0123456789abcdef0123456789abcdef"),
        participants,
        ...(sparse ? { rosterHash: "ab".repeat(32), size: rng.range(2, 10_000) } : {}),
      };
      assert.deepEqual(encodeMessage(message), reference(message), `seed ${seed}, window ${w}`);
    }
  }
});

Deno.test("START re-encodes an entry whose values changed since it was cached", () => {
  const rng = new Rng(7);
  const participants = roster(rng, 3, true);
  const message: MessageOf<"start"> = { type: "start", session: "00".repeat(16), participants };
  const before = encodeMessage(message);
  assert.deepEqual(before, reference(message));
  const entry = participants[1]!;
  const changes: Array<() => void> = [
    () => entry.sealKey[3] = entry.sealKey[3]! ^ 1,
    () => entry.maskKey[64] = entry.maskKey[64]! ^ 1,
    () => entry.signature[0] = entry.signature[0]! ^ 1,
    () => entry.cert = `${entry.cert} `,
    () => entry.position = entry.position! + 1,
    () => delete entry.position,
  ];
  for (const change of changes) {
    const earlier = encodeMessage(message);
    change();
    const after = encodeMessage(message);
    assert.notDeepEqual(after, earlier, String(change));
    assert.deepEqual(after, reference(message), String(change));
  }
});

Deno.test("START from cached entries decodes back to the entries", () => {
  const rng = new Rng(11);
  const participants = roster(rng, 5, true).map((p, i) => ({
    ...p,
    name: `peer-${i}`,
    cert: pem(rng),
  }));
  const message: MessageOf<"start"> = {
    type: "start",
    session: "0123456789abcdef0123456789abcdef",
    participants,
    rosterHash: "cd".repeat(32),
    size: 900,
  };
  encodeMessage(message); // fills the cache
  assert.deepEqual(decodeMessage(encodeMessage(message)), message);
});

/** Accepts `text` as a 64-byte signature iff the old canonical decoder did. */
function checkSignature(text: string): void {
  const message = encoder.encode(
    JSON.stringify({ v: 2, type: "confirm", session: "00".repeat(16), signature: text }),
  );
  const payload = new Uint8Array(1 + message.length);
  payload[0] = 1;
  payload.set(message, 1);
  const old = text.length === 88 ? referenceFromBase64(text) : undefined;
  const expected = old !== undefined && old.length === 64 ? old : undefined;
  let got: Uint8Array | undefined;
  try {
    const decoded = decodeMessage(payload);
    assert.equal(decoded.type, "confirm");
    got = decoded.type === "confirm" ? decoded.signature : undefined;
  } catch (error) {
    assert.ok(error instanceof ProtocolError, String(error));
  }
  assert.deepEqual(got, expected, JSON.stringify(text));
}

Deno.test("base64 fields accept exactly the canonical spellings the old decoder did", () => {
  const rng = new Rng(3);
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ \n\t\r";
  let refused = 0;
  for (let n = 0; n < 3000; n++) {
    const canonical = toBase64(bytes(rng, rng.int(8) === 0 ? rng.range(62, 66) : 64));
    const chars = [...canonical];
    const edits = rng.int(3);
    for (let e = 0; e < edits; e++) {
      const at = rng.int(chars.length);
      const c = alphabet[rng.int(alphabet.length)]!;
      const kind = rng.int(3);
      if (kind === 0) chars[at] = c;
      else if (kind === 1) chars.splice(at, 0, c);
      else chars.splice(at, 1);
    }
    // Near the end sit the padding and the bits under it.
    if (rng.int(4) === 0) chars[chars.length - 2] = alphabet[rng.int(64)]!;
    const text = chars.join("");
    checkSignature(text);
    if (referenceFromBase64(text)?.length !== 64 || text.length !== 88) refused++;
  }
  assert.ok(refused > 1000, `only ${refused} of the strings were refused: a weak sample`);
  // By hand: the last character's unused bits, no padding, white space.
  const good = toBase64(new Uint8Array(64).fill(255));
  checkSignature(good);
  checkSignature(`${good.slice(0, 85)}/w==`);
  checkSignature(`${good.slice(0, 85)}/x==`);
  checkSignature(`${good.slice(0, 86)}==`);
  checkSignature(`${good.slice(0, 86)}w `);
  checkSignature(` ${good.slice(0, 87)}`);
  checkSignature(`${good.slice(0, 40)}\n${good.slice(41)}`);
  checkSignature(good.replaceAll("/", "_"));
  // Four white-space characters in 88: whole chunks that decode short.
  checkSignature(`${good.slice(0, 84)}    `);
  checkSignature(`    ${good.slice(0, 84)}`);
  checkSignature(`${good.slice(0, 80)}    ${good.slice(84)}`);
});

Deno.test("base64 fields are written as btoa wrote them", () => {
  const rng = new Rng(5);
  for (let n = 0; n < 200; n++) {
    const signature = bytes(rng, 64);
    const payload = encodeMessage({ type: "confirm", session: "00".repeat(16), signature });
    const json = JSON.parse(new TextDecoder().decode(payload.subarray(1)));
    assert.equal(json.signature, referenceBase64(signature));
    // A view into a larger buffer is written as its own bytes only.
    const big = bytes(rng, 80);
    const view = big.subarray(8, 72);
    const viewed = encodeMessage({ type: "confirm", session: "00".repeat(16), signature: view });
    assert.equal(
      JSON.parse(new TextDecoder().decode(viewed.subarray(1))).signature,
      referenceBase64(view.slice()),
    );
  }
});

Deno.test("toBase64 writes what btoa wrote, for every length and for views", () => {
  const rng = new Rng(9);
  for (let length = 0; length <= 300; length++) {
    const data = bytes(rng, length);
    assert.equal(toBase64(data), referenceBase64(data), `length ${length}`);
    const big = bytes(rng, length + 20);
    const view = big.subarray(7, 7 + length);
    assert.equal(toBase64(view), referenceBase64(view.slice()), `view of length ${length}`);
  }
  const mib = rng.blockBytes(1 << 20);
  assert.equal(toBase64(mib), referenceBase64(mib));
});

Deno.test("fromCanonicalBase64 accepts exactly the strings atob reads and btoa writes back", () => {
  const rng = new Rng(13);
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ \n\t\r\f\v";
  let accepted = 0;
  let refused = 0;
  const check = (text: string) => {
    const got = fromCanonicalBase64(text);
    assert.deepEqual(got, referenceFromBase64(text), JSON.stringify(text));
    if (got === undefined) refused++;
    else accepted++;
  };
  for (let n = 0; n < 20_000; n++) {
    const chars = [...referenceBase64(bytes(rng, rng.int(40)))];
    for (let e = rng.int(3); e > 0; e--) {
      const at = rng.int(chars.length + 1);
      const c = alphabet[rng.int(alphabet.length)]!;
      const kind = rng.int(3);
      if (kind === 0 && at < chars.length) chars[at] = c;
      else if (kind === 1) chars.splice(at, 0, c);
      else chars.splice(at, 1);
    }
    // Near the end sit the padding and the bits under it.
    if (chars.length >= 2 && rng.int(4) === 0) chars[chars.length - 2] = alphabet[rng.int(64)]!;
    check(chars.join(""));
  }
  assert.ok(accepted > 5000 && refused > 5000, `accepted ${accepted}, refused ${refused}`);
  // By hand: empty, bits under the padding, missing padding, white space, URL alphabet, non-ASCII.
  for (
    const text of [
      "",
      "AA==",
      "AB==",
      "AAA=",
      "AAE=",
      "AA",
      "AA=",
      "AA===",
      "AAAA",
      " AAAA",
      "AAAA\n",
      "AA\tAA",
      "AAA\r",
      "_-8=",
      "/+8=",
      "AAAA=",
      "A===",
      "AA==AA==",
      "\u00a0AAAA",
      "AAAA\u2028",
    ]
  ) check(text);
  const mib = rng.blockBytes(1 << 20);
  const text = referenceBase64(mib);
  assert.deepEqual(fromCanonicalBase64(text), mib);
  check(`${text.slice(0, -1)}\n`);
  check(`${text.slice(0, 1000)} ${text.slice(1001)}`);
});

function payloadOf(text: string): Uint8Array {
  const body = encoder.encode(text);
  const out = new Uint8Array(1 + body.length);
  out[0] = 1;
  out.set(body, 1);
  return out;
}

function sampleMessages(rng: Rng): Message[] {
  const session = "0123456789abcdef0123456789abcdef";
  const names = Array.from({ length: rng.range(1, 40) }, (_, i) => `peer-${i}`).sort();
  return [
    {
      type: "join",
      session,
      sealKey: bytes(rng, 65),
      maskKey: bytes(rng, 65),
      signature: bytes(rng, 64),
    },
    { type: "confirm", session, signature: bytes(rng, 64) },
    { type: "sealed", session, shares: names.map((to) => ({ to, sealed: bytes(rng, 144) })) },
    {
      type: "input",
      session,
      length: rng.range(1, 1 << 20),
      digest: "ab".repeat(32),
      seedCommit: "cd".repeat(32),
      partners: "ff07",
      signature: bytes(rng, 64),
    },
    { type: "consistency", session, signature: bytes(rng, 64) },
    {
      type: "attest",
      session,
      values: [rng.int(2 ** 40), 0, rng.int(1000)],
      signature: bytes(rng, 64),
    },
    { type: "refuse", session, reason: oddText(rng, "no thanks") },
    { type: "abort", session, reason: `stop ${"é".repeat(rng.int(5))}"\\` },
  ];
}

Deno.test("messages decode to the same values by the native and the strict reader", () => {
  for (let seed = 1; seed <= 30; seed++) {
    const rng = new Rng(seed);
    for (const message of sampleMessages(rng)) {
      const text = new TextDecoder().decode(encodeMessage(message).subarray(1));
      // A space the strict reader skips, and which sends it down the strict path.
      const spaced = `{ ${text.slice(1)}`;
      const fast = decodeMessage(payloadOf(text));
      assert.deepEqual(fast, decodeMessage(payloadOf(spaced)), `${message.type}, seed ${seed}`);
      assert.deepEqual(fast, message);
    }
  }
});

Deno.test("texts JSON.parse reads but the strict reader refuses are refused with its reason", () => {
  const sig = toBase64(new Uint8Array(64).fill(1));
  const s = "0123456789abcdef0123456789abcdef";
  const hostile = [
    `{"v":2,"type":"confirm","session":"${s}","session":"${s}","signature":"${sig}"}`,
    `{"v":2,"type":"confirm","type":"confirm","session":"${s}","signature":"${sig}"}`,
    `{"v":2.0,"type":"confirm","session":"${s}","signature":"${sig}"}`,
    `{"v":2e0,"type":"confirm","session":"${s}","signature":"${sig}"}`,
    `{"v":-2,"type":"confirm","session":"${s}","signature":"${sig}"}`,
    `{"v":2,"type":"attest","session":"${s}","values":[-0],"signature":"${sig}"}`,
    `{"v":2,"type":"attest","session":"${s}","values":[1.5],"signature":"${sig}"}`,
    `{"v":2,"type":"attest","session":"${s}","values":[-1],"signature":"${sig}"}`,
    `{"v":2,"type":"attest","session":"${s}","values":[9007199254740992],"signature":"${sig}"}`,
    `{"v":2,"type":"attest","session":"${s}","values":[1e+21],"signature":"${sig}"}`,
    `{"v":2,"type":"confirm","session":"${s}","signature":"${sig}","x":[[[[[[[[[[1]]]]]]]]]]}`,
    `{"v":2,"type":"confirm","session":"${s}","signature":"${sig}","x":${"[".repeat(200_000)}${
      "]".repeat(200_000)
    }}`,
  ];
  for (const text of hostile) {
    let strict: unknown;
    try {
      parseStrictJson(text);
    } catch (error) {
      strict = error;
    }
    let got: unknown;
    try {
      decodeMessage(payloadOf(text));
    } catch (error) {
      got = error;
    }
    assert.ok(got instanceof ProtocolError, `accepted: ${text.slice(0, 120)}`);
    if (strict instanceof Error) assert.equal(got.message, strict.message, text.slice(0, 120));
    else assert.match(got.message, /must be a whole number/, text.slice(0, 120));
  }
  // A key "__proto__" is an ordinary unknown field on both paths.
  assert.throws(
    () =>
      decodeMessage(
        payloadOf(`{"v":2,"type":"confirm","session":"${s}","signature":"${sig}","__proto__":{}}`),
      ),
    /is not a known field/,
  );
});
