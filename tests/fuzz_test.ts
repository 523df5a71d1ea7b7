/**
 * Fuzzing the v2 message decoder, lib/wire/messages.ts `decodePayload`
 * (JSON messages and binary vector chunks), with 120,000 seeded random and
 * mutated inputs per run. (The frame decoder has its own seeded fuzz of
 * 120,000 inputs in tests/net/frame_test.ts.)
 *
 * Inputs come from a small seeded PRNG (mulberry32) written here. A seeded,
 * non-cryptographic PRNG is the right tool for fuzz inputs: the same seed
 * gives the same inputs, so a failure can be replayed exactly. (The product
 * draws every random value from Web Crypto; nothing here is used by it.)
 * The seed is printed on every run; change `SEED` to explore other inputs
 * or to replay a failure (a failure names the seed, the input's index and
 * the input itself).
 *
 * Properties checked for every input:
 * - `decodePayload` returns or throws `ProtocolError`, nothing else;
 * - a message it accepts re-encodes to a payload that decodes to a
 *   deep-equal message, and re-encoding that is byte-stable;
 * - a chunk it accepts holds 1..CHUNK_ELEMENTS canonical field elements and
 *   re-encodes to exactly the payload it came from;
 * - what it returns holds at most 8 bytes per payload byte, and payloads
 *   as large as the frame limit in force (1 MiB + 64 after authentication)
 *   are decoded or refused the same way (the frame decoder never hands it
 *   more; its own fuzz checks that it never allocates past that limit);
 * - every message type and chunks are accepted sometimes (the mutators still
 *   reach the acceptance paths), and most mutants are refused.
 *
 * @module
 */

import assert from "node:assert/strict";
import { describeError, ProtocolError } from "../lib/errors.ts";
import { P } from "../lib/field.ts";
import { FRAME_LIMIT } from "../lib/wire/frame.ts";
import { createConsortium } from "../lib/pki.ts";
import {
  CHUNK_ELEMENTS,
  decodePayload,
  encodeChunk,
  encodeMessage,
  MAX_PARTICIPANTS,
  type Message,
  type MessageType,
  SEALED_BYTES,
  SHARE_WORDS,
  type Terms,
} from "../lib/wire/messages.ts";
import { Rng } from "./rng.ts";

/** Change to explore other inputs, or to replay a failure reported for another seed. */
const SEED = 0x5eed_0200;
/** Inputs per run of the main fuzz test (issue 9 asks for at least 100,000). */
const INPUTS = 120_000;

// ---------------------------------------------------------------- valid messages

const HEX = "0123456789abcdef";
const NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789-_";
const TYPES = [
  "invite",
  "start",
  "confirmations",
  "shares",
  "survivors",
  "unmask",
  "done",
  "abort",
  "join",
  "refuse",
  "confirm",
  "sealed",
  "input",
  "consistency",
  "reveal",
] as const satisfies readonly MessageType[];

/** A real certificate: the codec checks the PEM's shape, the protocol its contents. */
const CERT =
  (await createConsortium(["hospital"], { hosts: ["localhost"] })).parties.get("hospital")!
    .cert;

function name(r: Rng): string {
  return r.chance(0.5)
    ? r.pick(["hospital", "alice", "bob", "carol", "mallory"])
    : r.string(NAME_CHARS, 1, 32);
}

/** `count` distinct names, sorted as every list on the wire is. */
function names(r: Rng, count: number): string[] {
  const set = new Set<string>();
  while (set.size < count) set.add(name(r));
  return [...set].sort();
}

function count(r: Rng): number {
  return r.chance(0.002) ? MAX_PARTICIPANTS : r.range(1, 5);
}

function session(r: Rng): string {
  return r.string(HEX, 32, 32);
}

function signature(r: Rng): Uint8Array {
  return r.bytes(64);
}

function point(r: Rng): Uint8Array {
  const key = r.bytes(65);
  key[0] = 4;
  return key;
}

/** A canonical field element, often an edge value. */
function element(r: Rng): number {
  if (r.chance(0.3)) return r.pick([0, 1, P - 1, 2 ** 32, 2 ** 32 - 1]);
  const x = r.int(2 ** 20) * 2 ** 32 + r.u32();
  return x < P ? x : P - 1;
}

function elements(r: Rng, n: number): Float64Array {
  return Float64Array.from({ length: n }, () => element(r));
}

function reason(r: Rng): string {
  return r.chance(0.1) ? "x".repeat(1000) : r.string('abcdefg :,."\\\n\u2028é', 1, 40);
}

function terms(r: Rng): Terms {
  const threshold = r.chance(0.5);
  const t: Terms = {
    query: r.pick(["sum", "count", "mean", "variance", "vector:3", "histogram:0:10:5"]),
    scale: r.range(0, 6),
    max: BigInt(r.u32()) * BigInt(r.int(2 ** 20)),
    maxRows: r.range(1, 4096),
    mode: threshold ? "threshold" : "nofn",
    threshold: threshold ? r.range(2, 10) : 0,
    minContributors: r.range(1, 10),
    participants: r.range(2, MAX_PARTICIPANTS),
    dimension: r.range(1, 1 << 24),
  };
  if (r.chance(0.5)) {
    const ms = () => r.range(1, 86_400_000);
    t.deadlines = {
      joinMs: ms(),
      confirmMs: ms(),
      shareMs: ms(),
      inputMs: ms(),
      consistencyMs: ms(),
      unmaskMs: ms(),
    };
  }
  return t;
}

function validMessage(r: Rng, type: (typeof TYPES)[number]): Message {
  const s = session(r);
  switch (type) {
    case "invite":
      return { type, session: s, hospitalCert: CERT, terms: terms(r), signature: signature(r) };
    case "start":
      return {
        type,
        session: s,
        participants: names(r, Math.max(2, r.range(2, 4))).map((n) => ({
          name: n,
          cert: CERT,
          sealKey: point(r),
          maskKey: point(r),
          signature: signature(r),
        })),
      };
    case "confirmations":
      return {
        type,
        session: s,
        confirmations: names(r, count(r)).map((n) => ({ name: n, signature: signature(r) })),
      };
    case "shares":
      return {
        type,
        session: s,
        shares: names(r, count(r)).map((n) => ({ from: n, sealed: r.bytes(SEALED_BYTES) })),
      };
    case "survivors":
      return {
        type,
        session: s,
        set: names(r, count(r)),
        inputs: names(r, count(r)).map((n) => ({
          name: n,
          digest: r.string(HEX, 64, 64),
          seedCommit: r.string(HEX, 64, 64),
          partners: r.string(HEX, 2, 2),
          signature: signature(r),
        })),
      };
    case "unmask":
      return {
        type,
        session: s,
        set: names(r, count(r)),
        signatures: names(r, count(r)).map((n) => ({ name: n, signature: signature(r) })),
      };
    case "done":
      return { type, session: s, resultDigest: r.string(HEX, 64, 64), signature: signature(r) };
    case "abort":
    case "refuse":
      return { type, session: s, reason: reason(r) };
    case "join":
      return { type, session: s, sealKey: point(r), maskKey: point(r), signature: signature(r) };
    case "confirm":
    case "consistency":
      return { type, session: s, signature: signature(r) };
    case "sealed":
      return {
        type,
        session: s,
        shares: names(r, count(r)).map((n) => ({ to: n, sealed: r.bytes(SEALED_BYTES) })),
      };
    case "input":
      return {
        type,
        session: s,
        length: r.range(1, 1 << 24),
        digest: r.string(HEX, 64, 64),
        seedCommit: r.string(HEX, 64, 64),
        partners: r.string(HEX, 2, 2),
        signature: signature(r),
      };
    case "reveal":
      return {
        type,
        session: s,
        shares: names(r, count(r)).map((n) => ({
          of: n,
          kind: r.pick(["self", "mask"] as const),
          share: elements(r, SHARE_WORDS),
        })),
      };
  }
}

function validChunk(r: Rng): Uint8Array {
  const n = r.chance(0.01) ? CHUNK_ELEMENTS : r.range(1, 16);
  return encodeChunk(r.u32(), elements(r, n));
}

// ---------------------------------------------------------------- mutators

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function json(text: string): Uint8Array {
  const body = encoder.encode(text);
  const out = new Uint8Array(body.length + 1);
  out[0] = 0x01;
  out.set(body, 1);
  return out;
}

const INTERESTING_BYTES = [
  0,
  1,
  2,
  0x7f,
  0x80,
  0xff,
  0x22,
  0x5c,
  0x7b,
  0x7d,
  0x5b,
  0x5d,
  0x2c,
  0x3a,
];

/** Byte-level edits: flips, sets, inserts, deletes, truncation, duplicated spans. */
function mutateBytes(r: Rng, input: Uint8Array): Uint8Array {
  let bytes = Uint8Array.from(input);
  const edits = r.range(1, 4);
  for (let e = 0; e < edits; e++) {
    const at = r.int(bytes.length + 1);
    switch (r.int(6)) {
      case 0:
        if (bytes.length > 0) bytes[Math.min(at, bytes.length - 1)]! ^= 1 << r.int(8);
        break;
      case 1:
        if (bytes.length > 0) bytes[Math.min(at, bytes.length - 1)] = r.pick(INTERESTING_BYTES);
        break;
      case 2: {
        const extra = r.chance(0.5)
          ? Uint8Array.of(r.pick(INTERESTING_BYTES))
          : r.bytes(r.range(1, 8));
        bytes = Uint8Array.from([...bytes.subarray(0, at), ...extra, ...bytes.subarray(at)]);
        break;
      }
      case 3:
        bytes = Uint8Array.from([...bytes.subarray(0, at), ...bytes.subarray(at + r.range(1, 8))]);
        break;
      case 4:
        bytes = bytes.slice(0, at);
        break;
      default: {
        const from = r.int(bytes.length);
        const span = bytes.subarray(from, from + r.range(1, 16));
        bytes = Uint8Array.from([...bytes.subarray(0, at), ...span, ...bytes.subarray(at)]);
      }
    }
  }
  return bytes;
}

/** Values that break a field's rule: wrong types, non-canonical spellings, edges. */
function hostileValue(r: Rng, valid: unknown): unknown {
  const options: unknown[] = [
    null,
    true,
    0,
    -0,
    -1,
    1.5,
    2 ** 53,
    1e400,
    "",
    "A",
    "0",
    "01",
    "-1",
    "4503599627370449",
    "4503599627370448",
    " 1",
    "AAAA",
    "AAA=",
    "AA==",
    "AB==",
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",
    "0123456789ABCDEF0123456789ABCDEF",
    "x".repeat(1001),
    [],
    [1],
    {},
    { v: 2 },
    "bob",
    ["bob", "alice"],
    ["alice", "alice"],
    "BAD NAME",
    "a".repeat(33),
    "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
  ];
  if (typeof valid === "string" && valid.length > 0) {
    // Near misses of the valid value itself.
    options.push(valid.toUpperCase(), valid + "=", valid.slice(1), valid + valid[0], `${valid} `);
  }
  if (typeof valid === "number") options.push(valid + 1, valid - 1, -valid, String(valid));
  if (Array.isArray(valid)) {
    options.push([...valid].reverse(), [...valid, ...valid], valid.slice(1));
  }
  return r.pick(options);
}

/** Every path to a value inside `value`: [] is the root. */
function paths(value: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  const out: (string | number)[][] = [prefix];
  if (Array.isArray(value)) value.forEach((v, i) => out.push(...paths(v, [...prefix, i])));
  else if (typeof value === "object" && value !== null) {
    for (const [k, v] of Object.entries(value)) out.push(...paths(v, [...prefix, k]));
  }
  return out;
}

function getAt(root: unknown, path: (string | number)[]): unknown {
  let v = root as Record<string | number, unknown>;
  for (const key of path) v = v[key] as Record<string | number, unknown>;
  return v;
}

/** Structural edits of a valid message's JSON: a value replaced, a field dropped or added, types mixed. */
function mutateJson(r: Rng, payload: Uint8Array, pool: readonly Uint8Array[]): Uint8Array {
  const root = JSON.parse(decoder.decode(payload.subarray(1))) as Record<string, unknown>;
  const all = paths(root).filter((p) => p.length > 0);
  const path = r.pick(all);
  const parent = getAt(root, path.slice(0, -1)) as Record<string | number, unknown>;
  const key = path.at(-1)!;
  switch (r.int(6)) {
    case 0:
    case 1:
      parent[key] = hostileValue(r, parent[key]);
      break;
    case 2:
      if (Array.isArray(parent)) parent.splice(Number(key), 1);
      else delete parent[key];
      break;
    case 3:
      if (!Array.isArray(parent)) {
        parent[r.pick(["extra", "__proto__", "constructor", "V", "type2"])] = 1;
      } else parent.push(parent[0]);
      break;
    case 4: {
      // Another message's type or version on this body.
      root[r.pick(["type", "v"])] = r.pick(["join", "hello", 1, 3, "2", "INVITE", ...TYPES]);
      break;
    }
    default: {
      // A field taken from another valid message.
      const other = JSON.parse(decoder.decode(r.pick(pool).subarray(1))) as Record<string, unknown>;
      const [k, v] = r.pick(Object.entries(other));
      root[k] = v;
    }
  }
  return json(JSON.stringify(root));
}

/** Text-level edits JSON.stringify would never make: duplicate keys, odd escapes, whitespace, trailing text. */
function mutateText(r: Rng, payload: Uint8Array): Uint8Array {
  const text = decoder.decode(payload.subarray(1));
  switch (r.int(7)) {
    case 0: {
      // A duplicate key, the later one valid-looking.
      const m = /"([a-zA-Z]+)":("[^"]*"|[0-9]+)/.exec(text.slice(1));
      return m ? json(`{${m[0]},${text.slice(1)}`) : json(text);
    }
    case 1:
      return json(text.replace('"v":2', r.pick(['"v":2.0', '"v":2e0', '"v":02', '"\\u0076":2'])));
    case 2:
      return json(` ${text.replaceAll(",", r.pick([" ,", ",\n", ",\t"]))} `);
    case 3:
      return json(text + r.pick(["x", "{}", ",", "\u0000", "  "]));
    case 4:
      return json(text.replace(/"([a-z])/, r.pick(['"\\u00$1', '"\\$1', '"\\x$1'])));
    case 5:
      return Uint8Array.from([0x01, 0xef, 0xbb, 0xbf, ...payload.subarray(1)]);
    default:
      return json(`[${text}]`);
  }
}

const NOT_ELEMENTS = [P, P + 1, 2 ** 52, 2 ** 53, -1, 0.5, P - 0.5, NaN, Infinity, -Infinity, -0];

/** A chunk with one element that is not canonical, or a broken length or kind byte. */
function mutateChunk(r: Rng, chunk: Uint8Array): Uint8Array {
  const out = Uint8Array.from(chunk);
  const view = new DataView(out.buffer);
  switch (r.int(3)) {
    case 0: {
      const k = r.int((out.length - 5) / 8);
      view.setFloat64(5 + 8 * k, r.pick(NOT_ELEMENTS), true);
      return out;
    }
    case 1:
      return out.slice(0, r.range(0, out.length - 1));
    default:
      return Uint8Array.from([...out, ...r.bytes(r.range(1, 7))]);
  }
}

function nextInput(
  r: Rng,
  messages: readonly Uint8Array[],
  chunks: readonly Uint8Array[],
): Uint8Array {
  const choice = r.int(100);
  if (choice < 6) return r.pick(messages); // valid
  if (choice < 9) return r.pick(chunks); // valid
  if (choice < 35) return mutateJson(r, r.pick(messages), messages);
  if (choice < 50) return mutateText(r, r.pick(messages));
  if (choice < 70) return mutateBytes(r, r.pick(messages));
  if (choice < 82) return mutateChunk(r, r.pick(chunks));
  if (choice < 88) return mutateBytes(r, r.pick(chunks));
  // Random bytes, mostly behind a valid kind byte.
  const body = r.bytes(r.range(0, 64));
  return r.chance(0.8) ? Uint8Array.from([r.pick([1, 2]), ...body]) : body;
}

/**
 * What a decoded value holds, in bytes: strings at two bytes a character
 * (keys included), typed arrays their bytes, every other leaf eight. The
 * decoder allocates in proportion to what it returns and to the payload it
 * was given; this keeps the former in proportion to the latter.
 */
function footprint(value: unknown): number {
  if (typeof value === "string") return 2 * value.length;
  if (ArrayBuffer.isView(value)) return value.byteLength;
  if (Array.isArray(value)) return value.reduce((n: number, v) => n + 8 + footprint(v), 0);
  if (typeof value === "object" && value !== null) {
    return Object.entries(value).reduce((n, [k, v]) => n + 8 + 2 * k.length + footprint(v), 0);
  }
  return 8;
}

/** The most a decoded payload may hold per payload byte (see {@linkcode footprint}). */
const FOOTPRINT_PER_BYTE = 8;

function checkFootprint(decoded: unknown, input: Uint8Array, what: string): void {
  const held = footprint(decoded);
  assert.ok(
    held <= FOOTPRINT_PER_BYTE * input.length,
    `${what}: decoded ${input.length} bytes into ${held}, more than ${FOOTPRINT_PER_BYTE} per byte`,
  );
}

function show(input: Uint8Array): string {
  const head = input.subarray(0, 200);
  const text = decoder.decode(head);
  return `${input.length} bytes: ${JSON.stringify(text)}`;
}

Deno.test(`fuzz: decodePayload throws only ProtocolError over ${INPUTS} seeded inputs (seed 0x${SEED.toString(16)})`, () => {
  console.log(`message fuzz seed 0x${SEED.toString(16)}, ${INPUTS} inputs`);
  const r = new Rng(SEED);
  const messages: Uint8Array[] = [];
  for (let i = 0; i < 6; i++) {
    for (const type of TYPES) messages.push(encodeMessage(validMessage(r, type)));
  }
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < 20; i++) chunks.push(validChunk(r));
  for (const payload of [...messages, ...chunks]) decodePayload(payload); // every seed is valid

  const accepted = new Set<string>();
  let acceptedCount = 0;
  for (let index = 0; index < INPUTS; index++) {
    const input = nextInput(r, messages, chunks);
    let decoded;
    try {
      decoded = decodePayload(input);
    } catch (error) {
      if (!(error instanceof ProtocolError)) {
        assert.fail(
          `seed 0x${SEED.toString(16)} input ${index}: threw ${describeError(error)} for ${
            show(input)
          }`,
        );
      }
      continue;
    }
    acceptedCount++;
    checkFootprint(decoded, input, `input ${index}`);
    if (decoded.kind === "message") {
      accepted.add(decoded.message.type);
      const again = encodeMessage(decoded.message);
      const redecoded = decodePayload(again);
      assert.deepEqual(redecoded, decoded, `input ${index}: re-encoding changed the message`);
      assert.deepEqual(encodeMessage((redecoded as typeof decoded).message), again);
    } else {
      accepted.add("chunk");
      const { index: at, data } = decoded.chunk;
      assert.ok(data.length >= 1 && data.length <= CHUNK_ELEMENTS);
      for (const x of data) assert.ok(Number.isInteger(x) && x >= 0 && x < P && !Object.is(x, -0));
      assert.deepEqual(encodeChunk(at, data), input, `input ${index}: chunk not byte-exact`);
    }
  }
  console.log(`message fuzz: ${acceptedCount} of ${INPUTS} accepted (${[...accepted].join(", ")})`);
  assert.equal(
    accepted.size,
    TYPES.length + 1,
    "every message type and chunks were accepted sometimes",
  );
  assert.ok(acceptedCount < INPUTS / 2, "most mutants are refused");
});

/**
 * Payloads as large as the frame limit after authentication (the largest a
 * connection hands the decoder, lib/wire/frame.ts FRAME_LIMIT): full and
 * overlong chunks, a chunk with its last element spoiled, 1 MiB of random
 * bytes behind each kind byte, a JSON message padded with a huge field or
 * nested deeply. Each is decoded or refused with a ProtocolError, and what
 * is decoded is in proportion to the payload.
 */
Deno.test("payloads up to the frame limit: ProtocolError only, output in proportion", () => {
  const r = new Rng(SEED ^ 0x1_0000);
  const full = Float64Array.from({ length: CHUNK_ELEMENTS }, () => r.int(2 ** 30));
  const chunk = encodeChunk(7, full);
  assert.ok(chunk.length <= FRAME_LIMIT);
  const spoiled = Uint8Array.from(chunk);
  new DataView(spoiled.buffer).setFloat64(spoiled.length - 8, P, true);
  const big = FRAME_LIMIT - 1;
  const base = { v: 2, type: "confirm", session: "0".repeat(32), signature: "A".repeat(88) };
  const inputs: [string, Uint8Array, boolean][] = [
    ["a full chunk", chunk, true],
    ["a chunk one element too long", Uint8Array.from([...chunk, ...new Uint8Array(8)]), false],
    ["a full chunk with a last element of p", spoiled, false],
    ["1 MiB of random bytes as a chunk", Uint8Array.from([2, ...r.bytes(big)]), false],
    ["1 MiB of random bytes as a message", Uint8Array.from([1, ...r.bytes(big)]), false],
    [
      "a message with a 1 MiB field",
      json(JSON.stringify({ ...base, x: "A".repeat(big - 200) })),
      false,
    ],
    [
      "a message with a 1 MiB signature",
      json(JSON.stringify({ ...base, signature: "A".repeat(big - 200) })),
      false,
    ],
    [
      "a message nested 500,000 deep",
      json(`{"v":2,"type":"confirm","x":${"[".repeat(500_000)}`),
      false,
    ],
  ];
  for (const [what, input, valid] of inputs) {
    assert.ok(input.length <= FRAME_LIMIT, `${what}: within the frame limit`);
    let decoded;
    try {
      decoded = decodePayload(input);
    } catch (error) {
      assert.ok(error instanceof ProtocolError, `${what}: threw ${describeError(error)}`);
      assert.ok(!valid, `${what}: refused: ${describeError(error)}`);
      continue;
    }
    assert.ok(valid, `${what}: accepted`);
    checkFootprint(decoded, input, what);
  }
});

/**
 * Decoder errors end up in logs and in abort reasons, so attacker-chosen
 * text in them must neither flood nor forge lines: each message is short
 * and its logged form (`describeError`) has no control or line separator
 * character.
 */
Deno.test("decoder errors are one short line, whatever the input", () => {
  const r = new Rng(SEED ^ 0xbeef);
  const forged = "alice connected (1 of 2)";
  const base = { v: 2, type: "confirm", session: "0".repeat(32), signature: "A".repeat(88) };
  const targeted = [
    JSON.stringify({ ...base, [`x\n${forged}`]: 1 }),
    JSON.stringify({ ...base, [`x\u2028${forged}`]: 1 }),
    JSON.stringify({ ...base, [`x\u007f\u009b${forged}`]: 1 }),
    JSON.stringify({ ...base, ["k".repeat(200_000)]: 1 }),
    JSON.stringify({ ...base, type: "B".repeat(200_000) }),
    JSON.stringify({ ...base, type: `confirm\n${forged}` }),
    JSON.stringify({ ...base, v: "A".repeat(200_000) }),
    JSON.stringify({ ...base, v: `2\n${forged}` }),
    JSON.stringify({ ...base, session: `${"0".repeat(31)}\n${forged}` }),
    `{"v":2,"type":"confirm","x":${"[".repeat(100_000)}`,
  ].map(json);
  const messages = TYPES.map((type) => encodeMessage(validMessage(r, type)));
  const inputs = [...targeted];
  for (let i = 0; i < 20_000; i++) inputs.push(mutateJson(r, r.pick(messages), messages));
  const bad: string[] = [];
  for (const [index, input] of inputs.entries()) {
    try {
      decodePayload(input);
    } catch (error) {
      assert.ok(error instanceof ProtocolError, `input #${index}: ${String(error)}`);
      const logged = describeError(error);
      // deno-lint-ignore no-control-regex
      if (/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(logged) || logged.length > 301) {
        bad.push(`input #${index}: ${JSON.stringify(logged.slice(0, 120))} (${logged.length})`);
      }
    }
  }
  assert.deepEqual(bad.slice(0, 5), [], `${bad.length} decoder errors are not one short line`);
});
