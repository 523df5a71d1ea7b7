import assert from "node:assert/strict";
import { ProtocolError } from "../lib/errors.ts";
import { P, P_BIG } from "../lib/field.ts";
import {
  CHUNK_ELEMENTS,
  decodeMessage,
  encodeMessage,
  type Message,
  PROTOCOL_VERSION,
} from "../lib/messages.ts";

const CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
const SESSION = "0123456789abcdef0123456789abcdef";
const NONCE = "ab".repeat(32);
const SIG = new Uint8Array(64).fill(9);
const KEY = new Uint8Array(65).fill(4);

const SAMPLES: Message[] = [
  { type: "hello", from: "hospital", nonce: NONCE, key: KEY },
  { type: "auth", from: "alice", to: "hospital", nonce: NONCE, key: KEY, cert: CERT, sig: SIG },
  { type: "welcome", from: "hospital", to: "alice", cert: CERT, sig: SIG },
  { type: "refuse", reason: "no" },
  { type: "join", from: "alice", to: "hospital", address: "127.0.0.1:4000" },
  {
    type: "start",
    session: SESSION,
    from: "hospital",
    to: "alice",
    p: P_BIG,
    query: "histogram:-1.5:10:4",
    scale: 1,
    max: 1000n,
    maxRows: 4096,
    mode: "threshold",
    threshold: 2,
    deadlineMs: 30000,
    participants: [
      { name: "alice", address: "127.0.0.1:4001", cert: CERT },
      { name: "bob", address: "[::1]:4002", cert: CERT },
    ],
  },
  { type: "seed", session: SESSION, from: "alice", to: "bob", seed: new Uint8Array(32).fill(7) },
  { type: "share", session: SESSION, from: "alice", to: "bob", length: 3 },
  { type: "ack", session: SESSION, from: "bob", to: "alice" },
  { type: "holding", session: SESSION, from: "bob", to: "hospital", senders: ["alice", "bob"] },
  {
    type: "finalize",
    session: SESSION,
    from: "hospital",
    to: "bob",
    contributors: ["alice", "bob"],
    sig: SIG,
  },
  {
    type: "agg",
    session: SESSION,
    from: "alice",
    to: "hospital",
    contributors: ["alice", "bob"],
    length: 1,
    sig: SIG,
  },
  { type: "done", session: SESSION, from: "hospital", to: "alice" },
  { type: "abort", session: null, from: "alice", to: "hospital", reason: "stop" },
];

const text = new TextEncoder();
const encodeJson = (value: unknown) => text.encode(JSON.stringify(value));
const sample = (type: Message["type"]) => SAMPLES.find((m) => m.type === type)!;
const asJson = (m: Message) =>
  JSON.parse(new TextDecoder().decode(encodeMessage(m))) as Record<string, unknown>;

Deno.test("every message type round-trips", () => {
  for (const message of SAMPLES) assert.deepEqual(decodeMessage(encodeMessage(message)), message);
});

Deno.test("unknown versions and types are refused", () => {
  const hello = asJson(sample("hello"));
  assert.throws(
    () => decodeMessage(encodeJson({ ...hello, v: 2 })),
    /Unsupported protocol version 2/,
  );
  assert.throws(() => decodeMessage(encodeJson({ ...hello, v: "1" })), ProtocolError);
  const { v: _v, ...noVersion } = hello;
  assert.throws(() => decodeMessage(encodeJson(noVersion)), /protocol version/);
  assert.throws(() => decodeMessage(encodeJson({ ...hello, type: "launch" })), /unknown type/);
  assert.throws(() => decodeMessage(encodeJson({ ...hello, type: "toString" })), /unknown type/);
  assert.equal(hello["v"], PROTOCOL_VERSION);
});

Deno.test("a missing or extra field is refused, for every type", () => {
  for (const message of SAMPLES) {
    const json = asJson(message);
    for (const key of Object.keys(json).filter((k) => k !== "v" && k !== "type")) {
      const { [key]: _dropped, ...rest } = json;
      assert.throws(
        () => decodeMessage(encodeJson(rest)),
        ProtocolError,
        `${message.type} without ${key}`,
      );
    }
    assert.throws(() => decodeMessage(encodeJson({ ...json, extra: 1 })), /not a known field/);
  }
});

Deno.test("wrong types and non-canonical numbers are refused", () => {
  const share = asJson(sample("share"));
  for (const bad of ["01", "-1", "+1", "1e3", " 1", "1.0", "", P.toString(), 5, null]) {
    assert.throws(
      () => decodeMessage(encodeJson({ ...share, share: bad })),
      ProtocolError,
      String(bad),
    );
  }
  for (const bad of ["ABCDEF0123456789ABCDEF0123456789", "0123", 42]) {
    assert.throws(() => decodeMessage(encodeJson({ ...share, session: bad })), ProtocolError);
  }
  for (const bad of ["Alice", "a b", "", "x".repeat(33), 1]) {
    assert.throws(() => decodeMessage(encodeJson({ ...share, from: bad })), ProtocolError);
  }
  const agg = asJson(sample("agg"));
  assert.throws(() => decodeMessage(encodeJson({ ...agg, sig: "AAAA" })), /signature/);
  for (const bad of [["bob", "alice"], ["alice", "alice"], [], ["Alice"]]) {
    assert.throws(() => decodeMessage(encodeJson({ ...agg, contributors: bad })), ProtocolError);
  }
  const hello = asJson(sample("hello"));
  assert.throws(
    () => decodeMessage(encodeJson({ ...hello, key: btoa("x".repeat(64)) })),
    /hello\.key/,
  );
  for (const bad of ["shamir", 1]) {
    assert.throws(
      () => decodeMessage(encodeJson({ ...asJson(sample("start")), mode: bad })),
      ProtocolError,
    );
  }
  const start = asJson(sample("start"));
  assert.throws(() => decodeMessage(encodeJson({ ...start, deadlineMs: 1.5 })), ProtocolError);
  assert.throws(() => decodeMessage(encodeJson({ ...start, participants: [] })), ProtocolError);
  const twice = (start["participants"] as unknown[])[0];
  assert.throws(
    () => decodeMessage(encodeJson({ ...start, participants: [twice, twice] })),
    /repeat/,
  );
  const join = asJson(sample("join"));
  for (const bad of ["127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "host:port"]) {
    assert.throws(() => decodeMessage(encodeJson({ ...join, address: bad })), ProtocolError);
  }
});

Deno.test("vector chunks round-trip and refuse non-canonical contents", () => {
  const data = Float64Array.of(0, 1, P - 1, 12345);
  const decoded = decodeMessage(encodeMessage({ type: "chunk", data }));
  assert.equal(decoded.type, "chunk");
  assert.deepEqual(decoded.type === "chunk" && decoded.data, data);
  const full = decodeMessage(
    encodeMessage({ type: "chunk", data: new Float64Array(CHUNK_ELEMENTS) }),
  );
  assert.equal(full.type === "chunk" && full.data.length, CHUNK_ELEMENTS);
  assert.throws(
    () => encodeMessage({ type: "chunk", data: new Float64Array(CHUNK_ELEMENTS + 1) }),
    ProtocolError,
  );
  const payload = encodeMessage({ type: "chunk", data });
  const withElement = (x: number) => {
    const copy = payload.slice();
    new DataView(copy.buffer).setFloat64(8, x, true);
    return copy;
  };
  for (const bad of [P, -1, 0.5, NaN, Infinity]) {
    assert.throws(() => decodeMessage(withElement(bad)), /not a field element/, String(bad));
  }
  const padded = payload.slice();
  padded[3] = 1;
  assert.throws(() => decodeMessage(padded), /padding/);
  assert.throws(
    () => decodeMessage(payload.subarray(0, payload.length - 3)),
    /whole number of elements/,
  );
  assert.throws(() => decodeMessage(payload.subarray(0, 8)), /whole number of elements/);
});

Deno.test("non-JSON, non-UTF-8 and non-object payloads are refused", () => {
  for (
    const bytes of [
      new Uint8Array([0xff, 0xfe]),
      text.encode("{"),
      text.encode("[1]"),
      text.encode("null"),
    ]
  ) {
    assert.throws(() => decodeMessage(bytes), ProtocolError);
  }
});
