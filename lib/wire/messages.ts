/**
 * The v2 (star protocol) messages and their strict encoding. Pure: no I/O.
 *
 * A frame payload is one kind byte and a body: 0x01 and a UTF-8 JSON object
 * (a message), or 0x02 and a vector chunk. A message has exactly the fields
 * its type lists plus `v` (2) and `type`. Decoding refuses unknown versions
 * and types, missing or extra fields, duplicate keys, wrong types,
 * non-canonical numbers, base64 and hex, unsorted or repeated name lists, so
 * every accepted value has exactly one spelling and re-encodes to the same
 * fields. Nothing is signed over JSON text except `terms`, whose canonical
 * bytes ({@linkcode termsBytes}) are the encoder's output. The frame length
 * prefix is not here: it belongs to lib/wire/frame.ts.
 *
 * @module
 */

import { fromCanonicalBase64, toBase64 } from "../encoding.ts";
import { ProtocolError } from "../errors.ts";
import { P, P_BIG } from "../field.ts";
import { MAX_SCALE } from "../decimal.ts";
import { isPartyName } from "../names.ts";
import { parseStrictJson } from "./strict_json.ts";

/** The protocol version this module speaks. */
export const PROTOCOL_VERSION = 2;

/**
 * The most participants a round may list. A START entry is about 1.3 KB
 * (certificate, two keys, a signature), so 500 keep START inside the 1 MiB
 * frame limit.
 */
export const MAX_PARTICIPANTS = 500;

/**
 * The most participants a sparse round (terms with `neighbors`) may have:
 * no message lists more than a neighbourhood (K + 1 entries), so the list
 * cap above does not bind, and the roster is never sent whole.
 */
export const MAX_SPARSE_PARTICIPANTS = 10_000;

/** The largest neighbourhood degree K: a neighbourhood (K + 1 entries) fits a list. */
export const MAX_NEIGHBORS = 498;

/** Elements in one chunk frame: 64 Ki (512 KiB). */
export const CHUNK_ELEMENTS = 65536;

/** How many chunk frames carry a masked input of `dimension` elements (indices 0 … count − 1). */
export function chunkCount(dimension: number): number {
  return Math.ceil(dimension / CHUNK_ELEMENTS);
}

/** The longest vector a round may carry (as lib/query.ts MAX_DIMENSION). */
export const MAX_DIMENSION = 1 << 24;

/** Bytes of one sealed share message: 16 u64 elements and the 16-byte GCM tag. */
export const SEALED_BYTES = 16 * 8 + 16;

/** Field elements in one share of a 32-byte secret: one per 32-bit word. */
export const SHARE_WORDS = 8;

/** First payload byte of a JSON message. */
export const KIND_MESSAGE = 0x01;
/** First payload byte of a vector chunk. */
export const KIND_CHUNK = 0x02;

/** How the peers mask: everyone must finish (n-of-n), or Shamir threshold T. */
export type Mode = "nofn" | "threshold";

/** Per-phase deadlines the hospital announces, in milliseconds. */
export interface Deadlines {
  joinMs: number;
  confirmMs: number;
  shareMs: number;
  inputMs: number;
  consistencyMs: number;
  unmaskMs: number;
}

/** What a round computes and under which rules; signed in INVITE. */
export interface Terms {
  query: string;
  scale: number;
  /** The largest scaled input R, below p. */
  max: bigint;
  maxRows: number;
  mode: Mode;
  /** T in threshold rounds; 0 in n-of-n rounds. */
  threshold: number;
  minContributors: number;
  /**
   * N: how many peers are invited, so the most inputs a sum can cover. The
   * vector layout (lib/query.ts `vectorLayout`) is computed from it, and a
   * START roster may not be larger.
   */
  participants: number;
  /** The vector's length: the layout's for (query, max, maxRows, participants). */
  dimension: number;
  /**
   * K, the degree of the sparse pairing graph (docs/protocol.md §18): each
   * peer pairs, shares and checks only with its K neighbours. Absent: the
   * complete graph.
   */
  neighbors?: number;
  deadlines?: Deadlines;
}

interface Field<T> {
  decode(value: unknown, path: string): T;
  encode(value: T): unknown;
  optional?: boolean;
}

function fail(path: string, what: string): never {
  throw new ProtocolError(`Invalid message: ${path} ${what}`);
}

/** Attacker-chosen text for an error message: JSON-quoted and cut to 40 characters. */
function quote(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}

function stringField(test: (s: string) => boolean, what: string): Field<string> {
  return {
    decode(value, path) {
      if (typeof value !== "string" || !test(value)) fail(path, `must be ${what}`);
      return value;
    },
    encode: (value) => value,
  };
}

function literal<T extends string>(values: readonly T[]): Field<T> {
  return {
    decode(value, path) {
      if (typeof value !== "string" || !(values as readonly string[]).includes(value)) {
        fail(path, `must be one of ${values.map((v) => JSON.stringify(v)).join(", ")}`);
      }
      return value as T;
    },
    encode: (value) => value,
  };
}

const HEX32 = /^[0-9a-f]{32}$/;
const HEX64 = /^[0-9a-f]{64}$/;
const DECIMAL = /^(0|[1-9][0-9]{0,38})$/;
const PEM_CERT =
  /^-----BEGIN CERTIFICATE-----\n(?:[A-Za-z0-9+/]{1,64}\n)+?(?:[A-Za-z0-9+/=]{1,64}\n)?-----END CERTIFICATE-----\n?$/;

const partyName = stringField(isPartyName, "a party name");
const session = stringField((s) => HEX32.test(s), "32 lowercase hex digits");
const digest = stringField((s) => HEX64.test(s), "64 lowercase hex digits");
/**
 * A partner-set bitmap (lib/protocol/partners.ts): 1 to 63 bytes (⌈500/8⌉)
 * in lowercase hex. Its length for the roster is the protocol state's check.
 */
const bitmap = stringField(
  (s) => s.length >= 2 && s.length <= 126 && s.length % 2 === 0 && /^[0-9a-f]+$/.test(s),
  "a bitmap of 1 to 63 bytes in lowercase hex",
);
const certificate = stringField(
  (s) => s.length <= 8192 && PEM_CERT.test(s),
  "one PEM certificate",
);
/** The longest reason an ABORT or REFUSE may carry. */
export const MAX_REASON_CHARS = 1000;

/**
 * `reason` cut to {@linkcode MAX_REASON_CHARS}, so that a long internal
 * error still reaches the other side as an abort rather than as a message
 * its decoder refuses.
 */
export function fitReason(reason: string): string {
  if (reason === "") return "no reason given";
  return reason.length <= MAX_REASON_CHARS ? reason : `${reason.slice(0, MAX_REASON_CHARS - 1)}…`;
}

const reason = stringField(
  (s) => s.length >= 1 && s.length <= MAX_REASON_CHARS,
  "a reason of 1–1000 characters",
);
/** A variable an analyst names in a served round (docs/protocol.md §16). */
const variableName = stringField(
  (s) => /^[A-Za-z][A-Za-z0-9_-]{0,63}$/.test(s),
  "a variable name (a letter, then up to 63 letters, digits, '_' or '-')",
);
const query = stringField(
  (s) => s.length <= 200 && /^[a-z]+(:[0-9.+-]+)*$/.test(s),
  "a query spec",
);
/**
 * The most characters of a `released` message's statistics (JSON text): with
 * every character escaped it still fits a frame (docs/protocol.md §16.1).
 */
export const MAX_RELEASED_CHARS = 384 * 1024;
const statistics = stringField(
  (s) => s.length >= 2 && s.length <= MAX_RELEASED_CHARS,
  `JSON text of 2 to ${MAX_RELEASED_CHARS} characters`,
);

function integer(min: number, max: number): Field<number> {
  return {
    decode(value, path) {
      if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min || value > max) {
        fail(path, `must be a whole number from ${min} to ${max}`);
      }
      return value;
    },
    encode: (value) => value,
  };
}

/** A canonical decimal string (no sign, no leading zeros) below `limit`. */
function decimal(limit: bigint, what: string): Field<bigint> {
  return {
    decode(value, path) {
      if (typeof value !== "string" || !DECIMAL.test(value)) {
        fail(path, `must be ${what} written as a canonical decimal string`);
      }
      const n = BigInt(value);
      if (n >= limit) fail(path, `must be ${what}`);
      return n;
    },
    encode: (value) => value.toString(),
  };
}

/** Exactly `length` bytes as canonical padded base64. */
function bytes(length: number, what: string): Field<Uint8Array> {
  const chars = Math.ceil(length / 3) * 4;
  return {
    decode(value, path) {
      if (typeof value !== "string" || value.length !== chars) {
        fail(path, `must be ${what} (${length} bytes, base64)`);
      }
      const out = fromCanonicalBase64(value);
      if (out === undefined || out.length !== length) fail(path, "must be canonical base64");
      return out;
    },
    encode: (value) => toBase64(value),
  };
}

const signature = bytes(64, "a 64-byte ECDSA P-256 signature");
const publicKey = bytes(65, "a 65-byte uncompressed P-256 point");
const sealed = bytes(SEALED_BYTES, "a sealed share");
const shareBytes = bytes(SHARE_WORDS * 8, "a share");

/** Reads `count` u64 little-endian canonical field elements; undefined if one is not. */
export function readElements(data: Uint8Array, count: number): Float64Array | undefined {
  if (data.length !== count * 8) return undefined;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const out = new Float64Array(count);
  for (let k = 0; k < count; k++) {
    const low = view.getUint32(8 * k, true);
    const high = view.getUint32(8 * k + 4, true);
    if (high >= 2 ** 20) return undefined;
    const x = high * 2 ** 32 + low;
    if (x >= P) return undefined;
    out[k] = x;
  }
  return out;
}

/** Writes field elements as u64 little-endian. */
export function writeElements(elements: Float64Array): Uint8Array {
  const out = new Uint8Array(elements.length * 8);
  const view = new DataView(out.buffer);
  elements.forEach((x, k) => {
    view.setUint32(8 * k, x % 2 ** 32, true);
    view.setUint32(8 * k + 4, Math.floor(x / 2 ** 32), true);
  });
  return out;
}

/** A share: 8 canonical field elements, on the wire as 64 bytes of u64 LE in base64. */
const share: Field<Float64Array> = {
  decode(value, path) {
    const raw = shareBytes.decode(value, path);
    const elements = readElements(raw, SHARE_WORDS);
    if (!elements) fail(path, "must hold canonical field elements");
    return elements;
  },
  encode: (value) => shareBytes.encode(writeElements(value)),
};

/** The most segments a layout has (variance: 3 components × 3 residues). */
export const MAX_SEGMENTS = 16;

/** ATTEST's values: two challenges × at most MAX_SEGMENTS (docs/protocol.md §8.7). */
export const MAX_ATTESTED_VALUES = 2 * MAX_SEGMENTS;

/** ATTEST's values: 1 to MAX_ATTESTED_VALUES whole numbers below p1 (the largest modulus). */
const segmentValues: Field<number[]> = {
  decode(value, path) {
    if (!Array.isArray(value) || value.length < 1 || value.length > MAX_ATTESTED_VALUES) {
      fail(path, `must be a list of 1 to ${MAX_ATTESTED_VALUES} whole numbers`);
    }
    const element = integer(0, P - 1);
    return value.map((v, i) => element.decode(v, `${path}[${i}]`));
  },
  encode: (value) => [...value],
};

/** Party names, strictly ascending (bytewise = code-unit order for these names). */
function nameList(min: number): Field<string[]> {
  return {
    decode(value, path) {
      if (!Array.isArray(value) || value.length < min || value.length > MAX_PARTICIPANTS) {
        fail(path, `must be a list of ${min} to ${MAX_PARTICIPANTS} party names`);
      }
      value.forEach((name, i) => {
        partyName.decode(name, `${path}[${i}]`);
        if (i > 0 && !(value[i - 1] < name)) fail(path, "must be sorted and without repeats");
      });
      return [...value] as string[];
    },
    encode: (value) => [...value],
  };
}

function optional<T>(field: Field<T>): Field<T | undefined> & { optional: true } {
  return { ...(field as Field<T | undefined>), optional: true };
}

type Schema = Record<string, Field<unknown>>;
type Decoded<S> =
  & {
    [K in keyof S as S[K] extends { optional: true } ? never : K]: S[K] extends Field<infer T> ? T
      : never;
  }
  & {
    [K in keyof S as S[K] extends { optional: true } ? K : never]?: S[K] extends Field<infer T>
      ? Exclude<T, undefined>
      : never;
  };

function object<S extends Schema>(schema: S): Field<Decoded<S>> {
  return {
    decode(value, path) {
      if (typeof value !== "object" || value === null || Array.isArray(value)) {
        fail(path, "must be an object");
      }
      const record = value as Record<string, unknown>;
      for (const key of Object.keys(record)) {
        if (!Object.hasOwn(schema, key)) fail(`${path}[${quote(key)}]`, "is not a known field");
      }
      const out: Record<string, unknown> = {};
      for (const [key, field] of Object.entries(schema)) {
        if (!Object.hasOwn(record, key)) {
          if (field.optional) continue;
          fail(`${path}.${key}`, "is missing");
        }
        out[key] = field.decode(record[key], `${path}.${key}`);
      }
      return out as Decoded<S>;
    },
    encode(value) {
      const out: Record<string, unknown> = {};
      for (const [key, field] of Object.entries(schema)) {
        const item = (value as Record<string, unknown>)[key];
        if (item === undefined && field.optional) continue;
        out[key] = field.encode(item);
      }
      return out;
    },
  };
}

/** A list of objects sorted strictly by the string field `key` (one entry per name). */
function sortedList<S extends Schema>(
  item: S,
  key: keyof S & string,
  min: number,
): Field<Decoded<S>[]> {
  const codec = object(item);
  return {
    decode(value, path) {
      if (!Array.isArray(value) || value.length < min || value.length > MAX_PARTICIPANTS) {
        fail(path, `must be a list of ${min} to ${MAX_PARTICIPANTS} entries`);
      }
      const list = value.map((entry, i) => codec.decode(entry, `${path}[${i}]`));
      list.forEach((entry, i) => {
        const name = (entry as Record<string, unknown>)[key] as string;
        const before = i > 0 ? (list[i - 1] as Record<string, unknown>)[key] as string : undefined;
        if (before !== undefined && !(before < name)) {
          fail(path, `must be sorted by ${key} and without repeats`);
        }
      });
      return list;
    },
    encode: (value) => value.map((entry) => codec.encode(entry)),
  };
}

const deadlineMs = integer(1, 86_400_000);
const deadlines = object({
  joinMs: deadlineMs,
  confirmMs: deadlineMs,
  shareMs: deadlineMs,
  inputMs: deadlineMs,
  consistencyMs: deadlineMs,
  unmaskMs: deadlineMs,
});

const termsSchema = {
  query,
  scale: integer(0, MAX_SCALE),
  max: decimal(P_BIG, "an integer below p"),
  maxRows: integer(1, 2 ** 31),
  mode: literal(["nofn", "threshold"] as const),
  threshold: integer(0, MAX_PARTICIPANTS),
  // Above MAX_PARTICIPANTS only in sparse rounds (lib/protocol/terms.ts).
  minContributors: integer(1, MAX_SPARSE_PARTICIPANTS),
  participants: integer(2, MAX_SPARSE_PARTICIPANTS),
  dimension: integer(1, MAX_DIMENSION),
  neighbors: optional(integer(2, MAX_NEIGHBORS)),
  deadlines: optional(deadlines),
};
const terms = object(termsSchema) as unknown as Field<Terms>;

const startEntry = {
  name: partyName,
  cert: certificate,
  sealKey: publicKey,
  maskKey: publicKey,
  signature,
  // Sparse rounds: the participant's place in the permuted roster (§18).
  position: optional(integer(0, MAX_SPARSE_PARTICIPANTS - 1)),
};

const SCHEMAS = {
  // Hospital → peer
  invite: { session, hospitalCert: certificate, terms, signature },
  start: {
    session,
    participants: sortedList(startEntry, "name", 2),
    // Sparse rounds: the START hash of the whole roster, and its size (§18).
    rosterHash: optional(digest),
    size: optional(integer(2, MAX_SPARSE_PARTICIPANTS)),
  },
  confirmations: {
    session,
    confirmations: sortedList({ name: partyName, signature }, "name", 1),
  },
  shares: { session, shares: sortedList({ from: partyName, sealed }, "from", 1) },
  // The hospital is ready for this peer's chunk frames (docs/protocol.md §10.9).
  proceed: { session },
  survivors: {
    session,
    set: nameList(1),
    // Every member's signed INPUT statement, so each peer checks the partner sets itself.
    inputs: sortedList(
      { name: partyName, digest, seedCommit: digest, partners: bitmap, signature },
      "name",
      1,
    ),
  },
  unmask: {
    session,
    set: nameList(1),
    // Sparse rounds: each signer's signed view of its neighbourhood (§18).
    signatures: sortedList({ name: partyName, signature, view: optional(bitmap) }, "name", 1),
  },
  // Sparse rounds: setDigest stands for the set no peer sees whole (§18).
  done: { session, resultDigest: digest, signature, setDigest: optional(digest) },
  abort: { session, reason },
  // Hospital → peer agent, before a served round's INVITE (docs/protocol.md §16)
  describe: { session, variable: variableName },
  // Hospital → peer agent, after a served round's attest phase: what it released (§16.1)
  released: {
    session,
    variable: variableName,
    query,
    set: nameList(1),
    resultDigest: digest,
    statistics: optional(statistics),
    signature,
  },
  // Peer → hospital
  join: { session, sealKey: publicKey, maskKey: publicKey, signature },
  refuse: { session, reason },
  confirm: { session, signature },
  sealed: { session, shares: sortedList({ to: partyName, sealed }, "to", 1) },
  input: {
    session,
    length: integer(1, MAX_DIMENSION),
    digest,
    seedCommit: digest,
    partners: bitmap,
    signature,
  },
  consistency: { session, signature },
  // After DONE, each survivor's ⟨r, y⟩ per segment (docs/protocol.md §8.7)
  attest: { session, values: segmentValues, signature },
  reveal: {
    session,
    shares: sortedList({ of: partyName, kind: literal(["self", "mask"] as const), share }, "of", 1),
  },
  // Peer agent → hospital, the answer to `describe` (docs/protocol.md §16)
  description: {
    session,
    variable: variableName,
    scale: integer(0, MAX_SCALE),
    max: decimal(P_BIG, "an integer below p"),
    maxRows: integer(1, 2 ** 31),
    dimension: integer(0, MAX_DIMENSION),
  },
} as const satisfies Record<string, Schema>;

type Schemas = typeof SCHEMAS;

/** A message type name. */
export type MessageType = keyof Schemas;

/** A decoded message of one type. */
export type MessageOf<T extends MessageType> = { type: T } & Decoded<Schemas[T]>;

/** Any decoded v2 message. */
export type Message = { [T in MessageType]: MessageOf<T> }[MessageType];

/** One entry of START's participant list. */
export type Participant = MessageOf<"start">["participants"][number];

/** A decoded vector chunk. */
export interface Chunk {
  index: number;
  data: Float64Array;
}

const codecs = Object.fromEntries(
  Object.entries(SCHEMAS).map(([type, schema]) => [type, object(schema)]),
) as unknown as { [T in MessageType]: Field<Decoded<Schemas[T]>> };

const encoder = new TextEncoder();
// ignoreBOM keeps a leading byte-order mark in the text, where the strict
// parser refuses it: otherwise a BOM would be a second spelling of a message.
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * The canonical bytes of `terms` that INVITE's signature and the START hash
 * cover: the UTF-8 JSON the encoder writes (fields in the order listed in
 * {@linkcode Terms}, no white space, optional `deadlines` omitted when absent).
 */
export function termsBytes(value: Terms): Uint8Array {
  return encoder.encode(JSON.stringify(terms.encode(value)));
}

/** The JSON text of a message, as {@linkcode encodeMessage} writes it. */
function messageJson(message: Message): string {
  const { type, ...body } = message;
  const codec = codecs[type] as Field<unknown>;
  return JSON.stringify({ v: PROTOCOL_VERSION, type, ...(codec.encode(body) as object) });
}

/** Encodes a message as a frame payload: 0x01 then UTF-8 JSON. */
export function encodeMessage(message: Message): Uint8Array {
  if (message.type === "start") return encodeStart(message);
  const json = encoder.encode(messageJson(message));
  const payload = new Uint8Array(1 + json.length);
  payload[0] = KIND_MESSAGE;
  payload.set(json, 1);
  return payload;
}

const startEntryCodec = object(startEntry);

/** An entry's UTF-8 JSON and the values it was made from, to tell whether it still holds. */
interface EncodedEntry {
  name: string;
  cert: string;
  sealKey: Uint8Array;
  maskKey: Uint8Array;
  signature: Uint8Array;
  position: number | undefined;
  json: Uint8Array;
}

/**
 * Each START entry's UTF-8 JSON, by entry object. Why: a hospital sends every
 * entry (about 1.3 KB, a certificate and three base64 fields) in up to K + 1
 * windows, or N copies of the whole roster, and encoding them afresh was
 * most of the time spent sending START. A cached text is used only while
 * the entry still holds the values it was made from (the byte fields
 * compared by content), so a changed entry is encoded again, never sent stale.
 */
const encodedEntries = new WeakMap<Participant, EncodedEntry>();

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function entryJson(entry: Participant): Uint8Array {
  const cached = encodedEntries.get(entry);
  if (
    cached && cached.name === entry.name && cached.cert === entry.cert &&
    cached.position === entry.position && sameBytes(cached.sealKey, entry.sealKey) &&
    sameBytes(cached.maskKey, entry.maskKey) && sameBytes(cached.signature, entry.signature)
  ) {
    return cached.json;
  }
  const json = encoder.encode(JSON.stringify(startEntryCodec.encode(entry)));
  encodedEntries.set(entry, {
    name: entry.name,
    cert: entry.cert,
    sealKey: entry.sealKey.slice(),
    maskKey: entry.maskKey.slice(),
    signature: entry.signature.slice(),
    position: entry.position,
    json,
  });
  return json;
}

const LIST_OPEN = '"participants":[';
const COMMA = encoder.encode(",");

/**
 * START assembled from its entries' cached JSON: byte for byte the text
 * {@linkcode messageJson} writes (JSON.stringify puts an array's elements
 * between `[`, `,` and `]` with nothing else, and UTF-8 of a concatenation
 * is the concatenation of the UTF-8), which tests/protocol/start_encoding_test.ts
 * checks against it on random rosters.
 */
function encodeStart(message: MessageOf<"start">): Uint8Array {
  // The message with an empty list, split where the entries go. The marker
  // cannot occur earlier: JSON escapes every quote inside a string.
  const frame = messageJson({ ...message, participants: [] });
  const at = frame.indexOf(`${LIST_OPEN}]`) + LIST_OPEN.length;
  const head = encoder.encode(frame.slice(0, at));
  const tail = encoder.encode(frame.slice(at));
  const entries = message.participants.map(entryJson);
  let length = 1 + head.length + tail.length + Math.max(0, entries.length - 1);
  for (const entry of entries) length += entry.length;
  const payload = new Uint8Array(length);
  payload[0] = KIND_MESSAGE;
  payload.set(head, 1);
  let offset = 1 + head.length;
  entries.forEach((entry, i) => {
    if (i > 0) payload.set(COMMA, offset++);
    payload.set(entry, offset);
    offset += entry.length;
  });
  payload.set(tail, offset);
  return payload;
}

/** Decodes and strictly validates a 0x01 payload. */
export function decodeMessage(payload: Uint8Array): Message {
  if (payload[0] !== KIND_MESSAGE) throw new ProtocolError("Invalid message: not a JSON payload");
  let text: string;
  try {
    text = decoder.decode(payload.subarray(1));
  } catch (cause) {
    throw new ProtocolError("Invalid message: not UTF-8", { cause });
  }
  const canonical = canonicalJson(text);
  if (canonical !== undefined) {
    try {
      return validate(canonical);
    } catch {
      // Refused: refused again below, so the reason is the strict reader's, as it always was.
    }
  }
  return validate(parseStrictJson(text));
}

/**
 * `JSON.parse(text)` when `text` is exactly what `JSON.stringify` writes for
 * it, else undefined. Why: every honest message is that text (it is what
 * {@linkcode encodeMessage} sends), and V8's native parser and writer are
 * many times faster than the strict reader, which the hospital ran on every
 * message of every peer. Such a text is one the strict reader reads to the
 * same value: `JSON.stringify` writes each key of an object once, no white
 * space, no needless escapes, and numbers in their shortest form, so the
 * only texts the strict reader would refuse are numbers other than
 * canonical integers (negative, fractional, exponent, above 2^53 − 1) and
 * deep nesting, and no field of any message accepts either. Anything else,
 * and any refusal, goes through the strict reader.
 */
function canonicalJson(text: string): unknown {
  try {
    const value: unknown = JSON.parse(text);
    return JSON.stringify(value) === text ? value : undefined;
  } catch {
    // Not JSON, or nested too deep for the writer's stack: the strict reader says why.
    return undefined;
  }
}

/** A parsed message checked against its type's schema. */
function validate(value: unknown): Message {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    fail("message", "must be a JSON object");
  }
  const { v, type, ...body } = value as Record<string, unknown>;
  if (v !== PROTOCOL_VERSION) {
    throw new ProtocolError(
      `Unsupported protocol version ${quote(v)}: this build speaks version ${PROTOCOL_VERSION}`,
    );
  }
  if (typeof type !== "string" || !Object.hasOwn(SCHEMAS, type)) {
    throw new ProtocolError(`Invalid message: unknown type ${quote(type)}`);
  }
  const codec = codecs[type as MessageType] as Field<Record<string, unknown>>;
  return { type, ...codec.decode(body, type) } as Message;
}

/**
 * The one spelling of `idle` (docs/protocol.md §16.2), a serving hospital's
 * heartbeat between rounds. It carries nothing, not even a session, so it
 * stays outside {@linkcode Message} (whose every type names one) and is told
 * apart by its exact bytes before decoding: any other spelling is an
 * unknown type to {@linkcode decodeMessage}.
 */
const IDLE_PAYLOAD: Uint8Array = (() => {
  const json = encoder.encode(JSON.stringify({ v: PROTOCOL_VERSION, type: "idle" }));
  const payload = new Uint8Array(1 + json.length);
  payload[0] = KIND_MESSAGE;
  payload.set(json, 1);
  return payload;
})();

/** The payload of an `idle` frame: 0x01 then `{"v":2,"type":"idle"}`. */
export function encodeIdle(): Uint8Array {
  return IDLE_PAYLOAD.slice();
}

/** Whether `payload` is the `idle` heartbeat, byte for byte. */
export function isIdle(payload: Uint8Array): boolean {
  if (payload.length !== IDLE_PAYLOAD.length) return false;
  for (let i = 0; i < payload.length; i++) if (payload[i] !== IDLE_PAYLOAD[i]) return false;
  return true;
}

const CHUNK_HEADER = 5;

/** Encodes chunk `index` of a vector: 0x02, u32 BE index, binary64 LE elements. */
export function encodeChunk(index: number, data: Float64Array): Uint8Array {
  if (!Number.isInteger(index) || index < 0 || index >= 2 ** 32) {
    throw new ProtocolError(`Cannot encode chunk: index ${index} is not a u32`);
  }
  if (data.length < 1 || data.length > CHUNK_ELEMENTS) {
    throw new ProtocolError(`Cannot encode chunk of ${data.length} elements`);
  }
  const payload = new Uint8Array(CHUNK_HEADER + data.length * 8);
  const view = new DataView(payload.buffer);
  payload[0] = KIND_CHUNK;
  view.setUint32(1, index, false);
  for (let k = 0; k < data.length; k++) view.setFloat64(CHUNK_HEADER + 8 * k, data[k]!, true);
  return payload;
}

/**
 * Decodes a 0x02 payload. Every element must be a whole number in [0, p1),
 * not −0: one spelling per vector. An element of a p2 or p3 segment must be
 * below its own, smaller modulus; the codec does not know the layout, so
 * that (like whether the index and length fit the announced vector) is the
 * protocol state's check.
 */
export function decodeChunk(payload: Uint8Array): Chunk {
  if (payload[0] !== KIND_CHUNK) throw new ProtocolError("Invalid chunk: not a chunk payload");
  const body = payload.length - CHUNK_HEADER;
  if (body <= 0 || body % 8 !== 0 || body / 8 > CHUNK_ELEMENTS) {
    throw new ProtocolError("Invalid chunk: length is not 1 to 65536 whole elements");
  }
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const index = view.getUint32(1, false);
  const data = new Float64Array(body / 8);
  for (let k = 0; k < data.length; k++) {
    const x = view.getFloat64(CHUNK_HEADER + 8 * k, true);
    if (!(x >= 0 && x < P && Math.floor(x) === x) || Object.is(x, -0)) {
      throw new ProtocolError(`Invalid chunk: element ${k} is not a field element`);
    }
    data[k] = x;
  }
  return { index, data };
}

/** A decoded frame payload of either kind. */
export type Payload = { kind: "message"; message: Message } | { kind: "chunk"; chunk: Chunk };

/** Decodes a frame payload by its kind byte. */
export function decodePayload(payload: Uint8Array): Payload {
  if (payload[0] === KIND_MESSAGE) return { kind: "message", message: decodeMessage(payload) };
  if (payload[0] === KIND_CHUNK) return { kind: "chunk", chunk: decodeChunk(payload) };
  throw new ProtocolError(`Invalid payload: unknown kind ${payload[0] ?? "(empty)"}`);
}
