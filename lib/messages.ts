/**
 * The protocol's messages and their strict JSON encoding. Pure: no I/O.
 *
 * Every message is a JSON object with exactly the fields its type lists, plus
 * `v` (the protocol version) and `type`. Decoding refuses unknown versions and
 * types, missing or extra fields, wrong types, non-canonical numbers and
 * base64, and unsorted name lists, so every accepted field has one spelling.
 * (JSON itself still allows white space and key order to vary; nothing is
 * signed over the JSON text, only over fields taken from decoded messages.)
 *
 * @module
 */

import { fromCanonicalBase64, toBase64 } from "./encoding.ts";
import { ProtocolError } from "./errors.ts";
import { isFieldVector, P_BIG } from "./field.ts";
import { MAX_SCALE } from "./decimal.ts";
import { isPartyName, parseHostPort } from "./names.ts";

/** The protocol version this build speaks. */
export const PROTOCOL_VERSION = 1;

/** The most participants a START may list. */
export const MAX_PARTICIPANTS = 200;

interface Field<T> {
  decode(value: unknown, path: string): T;
  encode(value: T): unknown;
}

function fail(path: string, what: string): never {
  throw new ProtocolError(`Invalid message: ${path} ${what}`);
}

/**
 * Attacker-chosen text for an error message: JSON-quoted (so control
 * characters are escaped) and cut to 40 characters, so a stranger can
 * neither flood nor forge log lines.
 */
export function quote(value: unknown): string {
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

const HEX64 = /^[0-9a-f]{64}$/;
const HEX32 = /^[0-9a-f]{32}$/;
const DECIMAL = /^(0|[1-9][0-9]{0,38})$/;
const PEM_CERT =
  /^-----BEGIN CERTIFICATE-----\n(?:[A-Za-z0-9+/]{1,64}\n)+?(?:[A-Za-z0-9+/=]{1,64}\n)?-----END CERTIFICATE-----\n?$/;

const partyName = stringField(isPartyName, "a party name");
const nonce = stringField((s) => HEX64.test(s), "64 lowercase hex digits");
const sessionId = stringField((s) => HEX32.test(s), "32 lowercase hex digits");
const certificate = stringField(
  (s) => s.length <= 8192 && PEM_CERT.test(s),
  "one PEM certificate",
);
const reason = stringField(
  (s) => s.length >= 1 && s.length <= 1000,
  "a reason of 1–1000 characters",
);
const address = stringField((s) => {
  try {
    parseHostPort(s);
    return true;
  } catch {
    return false;
  }
}, "HOST:PORT");

/** A canonical decimal integer (no sign, no leading zeros) in [0, limit). */
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

const scaledMax = decimal(P_BIG, "an integer below p");
const modulus = decimal(1n << 128n, "an integer below 2^128");

function boundedInteger(min: number, max: number): Field<number> {
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

/** Elements in one vector chunk: 64 Ki (512 KiB). */
export const CHUNK_ELEMENTS = 64 * 1024;
/** The longest vector a message may announce. */
export const MAX_VECTOR_LENGTH = 1 << 24;

const vectorLength = boundedInteger(1, MAX_VECTOR_LENGTH);
const scale = boundedInteger(0, MAX_SCALE);
const maxRows = boundedInteger(1, 2 ** 31);
const query = stringField(
  (s) => s.length <= 200 && /^[a-z]+(:[0-9.+-]+)*$/.test(s),
  "a query spec",
);

/** Exactly `length` bytes as canonical padded base64. */
function bytesField(length: number, what: string): Field<Uint8Array> {
  const chars = Math.ceil(length / 3) * 4;
  return {
    decode(value, path) {
      if (
        typeof value !== "string" || value.length !== chars || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)
      ) {
        fail(path, `must be ${what} (${length} bytes, base64)`);
      }
      const bytes = fromCanonicalBase64(value);
      if (bytes === undefined || bytes.length !== length) fail(path, "must be canonical base64");
      return bytes;
    },
    encode: (value) => toBase64(value),
  };
}

/** 64 bytes: an ECDSA P-256 signature in IEEE P1363 form (r ‖ s). */
const signature = bytesField(64, "a 64-byte ECDSA signature");

/** 32 bytes: a seed that expands to one share. */
const seed = bytesField(32, "a 32-byte seed");

/** 65 bytes: an uncompressed ephemeral ECDH P-256 public key. */
const ephemeralKey = bytesField(65, "a 65-byte P-256 public key");

const mode: Field<"additive" | "threshold"> = {
  decode(value, path) {
    if (value !== "additive" && value !== "threshold") {
      fail(path, 'must be "additive" or "threshold"');
    }
    return value;
  },
  encode: (value) => value,
};

const threshold: Field<number> = {
  decode(value, path) {
    if (
      typeof value !== "number" || !Number.isSafeInteger(value) || value < 1 ||
      value > MAX_PARTICIPANTS
    ) {
      fail(path, `must be a whole number from 1 to ${MAX_PARTICIPANTS}`);
    }
    return value;
  },
  encode: (value) => value,
};

/** Party names in strictly ascending order: one spelling per set. */
const nameList: Field<string[]> = {
  decode(value, path) {
    if (!Array.isArray(value) || value.length < 1 || value.length > MAX_PARTICIPANTS) {
      fail(path, `must be a list of 1 to ${MAX_PARTICIPANTS} party names`);
    }
    value.forEach((name, i) => {
      partyName.decode(name, `${path}[${i}]`);
      if (i > 0 && !(value[i - 1] < name)) fail(path, "must be sorted and without repeats");
    });
    return value as string[];
  },
  encode: (value) => value,
};

const deadlineMs: Field<number> = {
  decode(value, path) {
    if (
      typeof value !== "number" || !Number.isSafeInteger(value) || value < 1 || value > 86_400_000
    ) {
      fail(path, "must be a whole number of milliseconds from 1 to 86400000");
    }
    return value;
  },
  encode: (value) => value,
};

const optionalSession: Field<string | null> = {
  decode: (value, path) => value === null ? null : sessionId.decode(value, path),
  encode: (value) => value,
};

function object<S extends Record<string, Field<unknown>>>(schema: S): Field<Decoded<S>> {
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
        if (!Object.hasOwn(record, key)) fail(`${path}.${key}`, "is missing");
        out[key] = field.decode(record[key], `${path}.${key}`);
      }
      return out as Decoded<S>;
    },
    encode(value) {
      const out: Record<string, unknown> = {};
      for (const [key, field] of Object.entries(schema)) {
        out[key] = field.encode((value as Record<string, unknown>)[key]);
      }
      return out;
    },
  };
}

type Decoded<S> = { [K in keyof S]: S[K] extends Field<infer T> ? T : never };

/** One entry of START's participant list. */
export interface Participant {
  name: string;
  address: string;
  cert: string;
}

const participant = object({ name: partyName, address, cert: certificate });

const participants: Field<Participant[]> = {
  decode(value, path) {
    if (!Array.isArray(value) || value.length < 2 || value.length > MAX_PARTICIPANTS) {
      fail(path, `must be a list of 2 to ${MAX_PARTICIPANTS} participants`);
    }
    const list = value.map((item, i) => participant.decode(item, `${path}[${i}]`));
    const names = new Set(list.map((p) => p.name));
    if (names.size !== list.length) fail(path, "must not repeat a name");
    return list;
  },
  encode: (value) => value.map((item) => participant.encode(item)),
};

const SCHEMAS = {
  /** Server → client, first on every connection: who I am and a fresh nonce. */
  hello: { from: partyName, nonce, key: ephemeralKey },
  /** Client → server: who I am, whom I meant to reach, my nonce and key, my proof. */
  auth: {
    from: partyName,
    to: partyName,
    nonce,
    key: ephemeralKey,
    cert: certificate,
    sig: signature,
  },
  /** Server → client: the server's proof over the same transcript. */
  welcome: { from: partyName, to: partyName, cert: certificate, sig: signature },
  /** Either side, instead of the next message: why the connection is refused. */
  refuse: { reason },
  /** Peer → hospital: take me into the round; I receive shares at `address`. */
  join: { from: partyName, to: partyName, address },
  /** Hospital → peer: the round's parameters and participants. */
  start: {
    session: sessionId,
    from: partyName,
    to: partyName,
    p: modulus,
    query,
    scale,
    max: scaledMax,
    maxRows,
    mode,
    threshold,
    deadlineMs,
    participants,
  },
  /** Peer → peer (additive mode): the seed of the pairwise mask between sender and recipient. */
  seed: { session: sessionId, from: partyName, to: partyName, seed },
  /** Peer → peer (threshold mode): a share vector of `length` elements follows in chunks. */
  share: { session: sessionId, from: partyName, to: partyName, length: vectorLength },
  /** Peer → peer: the share arrived and was accepted. */
  ack: { session: sessionId, from: partyName, to: partyName },
  /** Peer → hospital (threshold mode): whose shares I hold, my own included. */
  holding: { session: sessionId, from: partyName, to: partyName, senders: nameList },
  /** Hospital → peer (threshold mode): the contributor set, signed; answer once. */
  finalize: {
    session: sessionId,
    from: partyName,
    to: partyName,
    contributors: nameList,
    sig: signature,
  },
  /** Peer → hospital: the signed partial sum over exactly the contributors' shares. */
  agg: {
    session: sessionId,
    from: partyName,
    to: partyName,
    contributors: nameList,
    length: vectorLength,
    sig: signature,
  },
  /** Hospital → peer: the round finished with a result. */
  done: { session: sessionId, from: partyName, to: partyName },
  /** Any party: the round is over without a result, and why. */
  abort: { session: optionalSession, from: partyName, to: partyName, reason },
} as const satisfies Record<string, Record<string, Field<unknown>>>;

type Schemas = typeof SCHEMAS;

/** A message type name. */
export type MessageType = keyof Schemas | "chunk";

/** A decoded message of one type. */
export type MessageOf<T extends MessageType> = T extends keyof Schemas
  ? { type: T } & Decoded<Schemas[T]>
  : { type: "chunk"; data: Float64Array };

/** Any decoded message. */
export type Message = { [T in MessageType]: MessageOf<T> }[MessageType];

/**
 * The first byte of a binary chunk payload. JSON payloads start with "{", so
 * the two cannot be confused. A chunk is this byte, 7 zero bytes (keeping the
 * data 8-byte aligned), then little-endian float64 field elements.
 */
const CHUNK_TAG = 0x01;
const CHUNK_HEADER_BYTES = 8;

function encodeChunk(data: Float64Array): Uint8Array {
  if (data.length === 0 || data.length > CHUNK_ELEMENTS) {
    throw new ProtocolError(`Cannot send chunk of ${data.length} elements`);
  }
  const payload = new Uint8Array(CHUNK_HEADER_BYTES + data.byteLength);
  payload[0] = CHUNK_TAG;
  payload.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), CHUNK_HEADER_BYTES);
  return payload;
}

function decodeChunk(payload: Uint8Array): Message {
  const bytes = payload.length - CHUNK_HEADER_BYTES;
  if (bytes <= 0 || bytes % 8 !== 0 || bytes / 8 > CHUNK_ELEMENTS) {
    throw new ProtocolError("Invalid chunk: length is not a whole number of elements");
  }
  for (let i = 1; i < CHUNK_HEADER_BYTES; i++) {
    if (payload[i] !== 0) throw new ProtocolError("Invalid chunk: non-zero padding");
  }
  // Copy: the receive buffer's offset need not be 8-byte aligned.
  const data = new Float64Array(bytes / 8);
  new Uint8Array(data.buffer).set(payload.subarray(CHUNK_HEADER_BYTES));
  if (!isFieldVector(data)) {
    throw new ProtocolError("Invalid chunk: an element is not a field element");
  }
  return { type: "chunk", data };
}

const codecs = Object.fromEntries(
  Object.entries(SCHEMAS).map(([type, schema]) => [type, object(schema)]),
) as unknown as { [T in keyof Schemas]: Field<Decoded<Schemas[T]>> };

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Encodes a message as the UTF-8 JSON payload of one frame. */
export function encodeMessage(message: Message): Uint8Array {
  if (message.type === "chunk") return encodeChunk(message.data);
  const { type, ...body } = message;
  const codec = codecs[type as keyof Schemas] as Field<unknown>;
  const encoded = codec.encode(body) as Record<string, unknown>;
  return encoder.encode(JSON.stringify({ v: PROTOCOL_VERSION, type, ...encoded }));
}

/** Decodes and strictly validates one frame payload. */
export function decodeMessage(payload: Uint8Array): Message {
  if (payload[0] === CHUNK_TAG) return decodeChunk(payload);
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(payload));
  } catch (cause) {
    throw new ProtocolError("Invalid message: not UTF-8 JSON", { cause });
  }
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
  const codec = codecs[type as keyof Schemas] as Field<Record<string, unknown>>;
  return { type, ...codec.decode(body, type) } as Message;
}
