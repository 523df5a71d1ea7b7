/**
 * Unit tests of the strict v2 codec (lib/wire/messages.ts): every message
 * type round-trips; decoding refuses wrong versions, unknown types, missing
 * and extra fields, duplicate keys, non-canonical numbers, base64, hex and
 * decimals, unsorted or repeated names; chunks refuse non-field elements;
 * terms have one canonical byte string.
 *
 * @module
 */

import assert from "node:assert/strict";
import { ProtocolError } from "../../lib/errors.ts";
import {
  decodeChunk,
  decodeMessage,
  decodePayload,
  encodeChunk,
  encodeMessage,
  fitReason,
  MAX_REASON_CHARS,
  type Message,
  type Terms,
  termsBytes,
} from "../../lib/wire/messages.ts";
import { testPki } from "./harness.ts";

const session = "0123456789abcdef0123456789abcdef";
const sig = new Uint8Array(64).fill(7);
const key = Uint8Array.from({ length: 65 }, (_, i) => (i === 0 ? 4 : i));
const digest = "ab".repeat(32);
const terms: Terms = {
  query: "sum",
  scale: 2,
  max: 123456789n,
  maxRows: 10,
  mode: "threshold",
  threshold: 3,
  minContributors: 3,
  participants: 5,
  dimension: 1,
};

function json(text: string): Uint8Array {
  const body = new TextEncoder().encode(text);
  const out = new Uint8Array(body.length + 1);
  out[0] = 1;
  out.set(body, 1);
  return out;
}

function text(payload: Uint8Array): string {
  return new TextDecoder().decode(payload.subarray(1));
}

async function samples(): Promise<Message[]> {
  const cert = (await testPki(3)).peers[0]!.certPem;
  const share = Float64Array.of(0, 1, 2, 3, 4, 5, 6, 4503599627370448);
  return [
    { type: "invite", session, hospitalCert: cert, terms, signature: sig },
    {
      type: "invite",
      session,
      hospitalCert: cert,
      terms: {
        ...terms,
        deadlines: {
          joinMs: 1,
          confirmMs: 2,
          shareMs: 3,
          inputMs: 4,
          consistencyMs: 5,
          unmaskMs: 6,
        },
      },
      signature: sig,
    },
    {
      type: "start",
      session,
      participants: ["a", "b"].map((name) => ({
        name,
        cert,
        sealKey: key,
        maskKey: key,
        signature: sig,
      })),
    },
    { type: "confirmations", session, confirmations: [{ name: "a", signature: sig }] },
    { type: "shares", session, shares: [{ from: "a", sealed: new Uint8Array(144) }] },
    {
      type: "survivors",
      session,
      set: ["a", "b", "c"],
      inputs: [{ name: "a", digest, seedCommit: digest, partners: "07", signature: sig }],
    },
    { type: "unmask", session, set: ["a", "b"], signatures: [{ name: "a", signature: sig }] },
    { type: "done", session, resultDigest: digest, signature: sig },
    { type: "abort", session, reason: "why" },
    { type: "join", session, sealKey: key, maskKey: key, signature: sig },
    { type: "refuse", session, reason: "no" },
    { type: "confirm", session, signature: sig },
    { type: "sealed", session, shares: [{ to: "b", sealed: new Uint8Array(144).fill(1) }] },
    {
      type: "input",
      session,
      length: 3,
      digest,
      seedCommit: digest,
      partners: "07",
      signature: sig,
    },
    { type: "consistency", session, signature: sig },
    {
      type: "reveal",
      session,
      shares: [{ of: "a", kind: "self", share }, { of: "b", kind: "mask", share }],
    },
  ];
}

Deno.test("codec: every message type round-trips exactly", async () => {
  for (const message of await samples()) {
    const payload = encodeMessage(message);
    assert.equal(payload[0], 1);
    assert.deepEqual(decodeMessage(payload), message);
    const again = decodePayload(payload);
    assert.equal(again.kind, "message");
  }
});

/** Rewrites the JSON of `message` and expects the decoder to refuse it. */
function refuses(message: Message, edit: (json: string) => string, pattern: RegExp): void {
  const original = text(encodeMessage(message));
  const edited = edit(original);
  assert.notEqual(edited, original, "the edit must change the text");
  assert.throws(() => decodeMessage(json(edited)), (e: unknown) => {
    assert.ok(e instanceof ProtocolError, String(e));
    assert.match(e.message, pattern);
    return true;
  });
}

Deno.test("codec: wrong version, unknown type, missing and extra fields are refused", () => {
  const m: Message = { type: "confirm", session, signature: sig };
  refuses(m, (s) => s.replace('"v":2', '"v":1'), /version/);
  refuses(m, (s) => s.replace('"v":2', '"v":"2"'), /version/);
  refuses(m, (s) => s.replace('"v":2,', ""), /version/);
  refuses(m, (s) => s.replace('"confirm"', '"confirmed"'), /unknown type/);
  refuses(m, (s) => s.replace(/,"signature":"[^"]*"/, ""), /signature is missing/);
  refuses(m, (s) => s.replace("}", ',"extra":1}'), /not a known field/);
  refuses(m, (s) => s.replace("}", ',"__proto__":{}}'), /not a known field/);
});

Deno.test("codec: duplicate keys are refused, also when JSON.parse would accept them", () => {
  const m: Message = { type: "confirm", session, signature: sig };
  refuses(m, (s) => s.replace("}", `,"session":"${session}"}`), /duplicate key/);
  refuses(m, (s) => s.replace('"v":2', '"v":2,"v":2'), /duplicate key/);
  const nested: Message = {
    type: "confirmations",
    session,
    confirmations: [{ name: "a", signature: sig }],
  };
  refuses(nested, (s) => s.replace('"name":"a"', '"name":"a","name":"a"'), /duplicate key/);
});

Deno.test("codec: non-canonical numbers, decimals, base64 and hex are refused", () => {
  const input: Message = {
    type: "input",
    session,
    length: 3,
    digest,
    seedCommit: digest,
    partners: "07",
    signature: sig,
  };
  for (const spelling of ["3.0", "3e0", "03", "-3", "0x3", "3 .0"]) {
    refuses(
      input,
      (s) => s.replace('"length":3', `"length":${spelling}`),
      /number|unexpected|expected/,
    );
  }
  refuses(input, (s) => s.replace('"length":3', '"length":"3"'), /whole number/);
  refuses(input, (s) => s.replace(session, session.toUpperCase()), /hex/);
  refuses(input, (s) => s.replace(digest, digest.slice(2)), /hex/);
  const join: Message = { type: "join", session, sealKey: key, maskKey: key, signature: sig };
  // 65 bytes end in 2 bits of padding inside the last character: set one.
  refuses(join, (s) =>
    s.replace(/"sealKey":"([^"]*)(.)="/, (_, a, c) => {
      const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
      return `"sealKey":"${a}${alphabet[alphabet.indexOf(c) ^ 1]}="`;
    }), /canonical base64/);
  refuses(join, (s) => s.replace(/"signature":"([^"]*)"/, '"signature":"$1\\n"'), /base64/);
  const invite = { type: "invite", session, hospitalCert: "", terms, signature: sig } as Message;
  const inviteText = (max: string) =>
    text(encodeMessage(invite)).replace('"max":"123456789"', `"max":${max}`);
  for (const max of ['"0123"', '"+1"', "123456789", '"4503599627370449"']) {
    assert.throws(() => decodeMessage(json(inviteText(max))), ProtocolError);
  }
});

Deno.test("codec: name lists must be sorted and without repeats", () => {
  const m: Message = {
    type: "survivors",
    session,
    set: ["a", "b", "c"],
    inputs: [{ name: "a", digest, seedCommit: digest, partners: "07", signature: sig }],
  };
  refuses(m, (s) => s.replace('["a","b","c"]', '["b","a","c"]'), /sorted/);
  refuses(m, (s) => s.replace('["a","b","c"]', '["a","a","c"]'), /sorted/);
  refuses(m, (s) => s.replace('["a","b","c"]', '["a","B","c"]'), /party name/);
  refuses(m, (s) => s.replace('["a","b","c"]', "[]"), /list/);
  const reveal: Message = {
    type: "reveal",
    session,
    shares: [{ of: "a", kind: "self", share: new Float64Array(8) }],
  };
  refuses(reveal, (s) => s.replace('"self"', '"both"'), /one of/);
});

Deno.test("codec: a share element at or above p is refused", () => {
  const m: Message = {
    type: "reveal",
    session,
    shares: [{ of: "a", kind: "mask", share: new Float64Array(8) }],
  };
  const bytes = new Uint8Array(64);
  new DataView(bytes.buffer).setBigUint64(0, 4503599627370449n, true);
  const b64 = btoa(String.fromCharCode(...bytes));
  refuses(m, (s) => s.replace(/"share":"[^"]*"/, `"share":"${b64}"`), /field elements/);
});

Deno.test("codec: chunks round-trip and refuse non-field elements and bad lengths", () => {
  const data = Float64Array.of(0, 1, 4503599627370448);
  const payload = encodeChunk(7, data);
  assert.deepEqual([...payload.subarray(0, 5)], [2, 0, 0, 0, 7]);
  assert.deepEqual(decodeChunk(payload), { index: 7, data });
  for (const bad of [-0, 4503599627370449, 1.5, NaN, -1, Infinity]) {
    const p = Uint8Array.from(payload);
    new DataView(p.buffer).setFloat64(5 + 8, bad, true);
    assert.throws(() => decodeChunk(p), ProtocolError, String(bad));
  }
  assert.throws(() => decodeChunk(payload.subarray(0, payload.length - 1)), ProtocolError);
  assert.throws(() => decodeChunk(payload.subarray(0, 5)), ProtocolError);
  assert.throws(() => decodePayload(Uint8Array.of(3, 0)), ProtocolError);
  assert.throws(() => decodePayload(new Uint8Array(0)), ProtocolError);
  assert.throws(() => encodeChunk(0, new Float64Array(65537)), ProtocolError);
});

Deno.test("codec: strict JSON refuses trailing text and bad escapes, keeps white space", () => {
  const m: Message = { type: "confirm", session, signature: sig };
  const s = text(encodeMessage(m));
  assert.deepEqual(decodeMessage(json(` ${s.replaceAll(",", " ,\n ")} `)), m);
  assert.throws(() => decodeMessage(json(s + "x")), /trailing/);
  assert.throws(() => decodeMessage(json(s + "{}")), /trailing/);
  assert.throws(() => decodeMessage(json(s.replace("confirm", "con\\qfirm"))), /escape/);
  assert.throws(() => decodeMessage(Uint8Array.of(1, 0xff, 0xfe)), /UTF-8/);
  assert.throws(() => decodeMessage(json("[1]")), /object/);
  // A byte-order mark would be a second spelling of the same message.
  const bom = Uint8Array.of(1, 0xef, 0xbb, 0xbf, ...new TextEncoder().encode(s));
  assert.throws(() => decodeMessage(bom), ProtocolError);
});

Deno.test("codec: an abort reason is cut to the limit, so a long one still arrives", () => {
  const long = "x".repeat(5000);
  const m: Message = { type: "abort", session, reason: fitReason(long) };
  const decoded = decodeMessage(encodeMessage(m));
  assert.equal(decoded.type, "abort");
  assert.equal((decoded as { reason: string }).reason.length, MAX_REASON_CHARS);
  assert.throws(() => decodeMessage(encodeMessage({ ...m, reason: long })), /reason/);
});

Deno.test("codec: terms have one canonical byte string", () => {
  const bytes = new TextDecoder().decode(termsBytes(terms));
  assert.equal(
    bytes,
    '{"query":"sum","scale":2,"max":"123456789","maxRows":10,"mode":"threshold",' +
      '"threshold":3,"minContributors":3,"participants":5,"dimension":1}',
  );
});

Deno.test("codec: terms.participants is a whole number from 2 to 10000, and required", async () => {
  const hospitalCert = (await testPki(3)).hospital.certPem;
  const invite: Message = { type: "invite", session, hospitalCert, terms, signature: sig };
  const encoded = text(encodeMessage(invite));
  assert.match(encoded, /"participants":5,/);
  // Above 500 only with sparse pairing: that is the terms' rule (lib/protocol/terms.ts), not the codec's.
  for (const bad of ["1", "0", "10001", '"5"', "null", "true"]) {
    refuses(invite, (s) => s.replace('"participants":5', `"participants":${bad}`), /participants/);
  }
  // Not JSON integers at all: the strict parser refuses them first.
  for (const bad of ["2.5", "-3", "5.0", "5e0"]) {
    refuses(
      invite,
      (s) => s.replace('"participants":5', `"participants":${bad}`),
      /non-canonical|unexpected/,
    );
  }
  refuses(invite, (s) => s.replace('"participants":5,', ""), /participants is missing/);
  for (const ok of [2, 500, 10000]) {
    const m = decodeMessage(json(encoded.replace('"participants":5', `"participants":${ok}`)));
    assert.equal(m.type === "invite" ? m.terms.participants : undefined, ok);
  }
});
