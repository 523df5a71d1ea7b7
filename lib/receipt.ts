/**
 * Verifiable receipts: everything a third party needs to check a round's
 * result without trusting the hospital. A receipt holds the round's terms
 * (query, scale, range, mode, threshold), every participant's certificate,
 * every signed partial sum and the hospital's signature over all of it;
 * `verifyReceipt` checks every chain and signature, recomputes the summed
 * vector from the signed partial sums and decodes the statistics again.
 *
 * Vectors are stored as base64 of their little-endian float64 bytes.
 *
 * @module
 */

import { MAX_SCALE } from "./decimal.ts";
import { fromCanonicalBase64, toBase64 } from "./encoding.ts";
import { FileError } from "./errors.ts";
import { addSegmentsInto, isSegmentedFieldVector, P_BIG, type Segment } from "./field.ts";
import type { RoundResult } from "./hospital.ts";
import {
  loadCaCertificate,
  signTranscript,
  verifyPartyCertificate,
  verifyTranscript,
} from "./identity.ts";
import { MAX_PARTICIPANTS } from "./messages.ts";
import { isPartyName } from "./names.ts";
import {
  decodeResult,
  decodeTotals,
  formatQuery,
  hasResidues,
  type Layout,
  parseQuery,
  type Query,
  vectorLayout,
} from "./query.ts";
import { aggregateFields, type Mode, type RoundTerms, vectorDigest } from "./round.ts";
import { evaluationPoint, reconstructShamirVector, type VectorPoint } from "./shamir.ts";

/** The receipt format this build writes and reads. */
export const RECEIPT_FORMAT = "sumshare-receipt/3";

/** A receipt as stored in JSON. */
export interface Receipt {
  format: string;
  session: string;
  p: string;
  query: string;
  scale: number;
  max: string;
  maxRows: number;
  mode: Mode;
  threshold: number;
  participants: { name: string; x: number; cert: string }[];
  contributors: string[];
  partials: { name: string; partial: string; signature: string }[];
  sum: string;
  result: Record<string, unknown>;
  hospital: { name: string; cert: string };
  signature: string;
}

/** Raised when a receipt does not check out; the message says what failed. */
export class InvalidReceiptError extends Error {
  override name = "InvalidReceiptError";
}

/** What a valid receipt proves. */
export interface VerifiedReceipt {
  sum: Float64Array;
  result: Record<string, unknown>;
  query: string;
  session: string;
  mode: Mode;
  threshold: number;
  participants: string[];
  contributors: string[];
  hospital: string;
}

/** JSON with object keys sorted at every level: the bytes the hospital signs. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (typeof value === "object" && value !== null) {
    const entries = Object.keys(value).sort().map((key) =>
      `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key])}`
    );
    return `{${entries.join(",")}}`;
  }
  return JSON.stringify(value);
}

function fromBase64(text: unknown, what: string): Uint8Array {
  check(typeof text === "string", `${what} is not base64 text`);
  const bytes = fromCanonicalBase64(text);
  check(bytes !== undefined, `${what} is not canonical base64`);
  return bytes;
}

/** The length of the padded base64 text of `bytes` bytes. */
function base64Length(bytes: number): number {
  return 4 * Math.ceil(bytes / 3);
}

function encodeVector(v: Float64Array): string {
  return toBase64(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
}

/**
 * A vector of the round's layout: `length` elements, each below the modulus
 * of its segment (p1, or p2 or p3 for residues).
 */
function decodeVector(
  text: unknown,
  length: number,
  segments: readonly Segment[],
  what: string,
): Float64Array {
  // Checked before decoding: a huge string must not cost a huge allocation.
  check(
    typeof text === "string" && text.length === base64Length(length * 8),
    `${what} is not a vector of ${length} elements`,
  );
  const bytes = fromBase64(text, what);
  check(bytes.length === length * 8, `${what} is not a vector of ${length} elements`);
  const v = new Float64Array(length);
  new Uint8Array(v.buffer).set(bytes);
  check(isSegmentedFieldVector(v, segments), `${what} holds a value that is not a field element`);
  return v;
}

/** Builds and signs the receipt for a finished round. */
export async function createReceipt(result: RoundResult, hospitalKey: CryptoKey): Promise<Receipt> {
  const body: Omit<Receipt, "signature"> = {
    format: RECEIPT_FORMAT,
    session: result.session,
    p: result.p.toString(),
    query: result.query,
    scale: result.scale,
    max: result.max.toString(),
    maxRows: result.maxRows,
    mode: result.mode,
    threshold: result.threshold,
    participants: result.participants.map((p, i) => ({ name: p.name, x: i + 1, cert: p.cert })),
    contributors: result.contributors,
    partials: result.partials.map((p) => ({
      name: p.name,
      partial: encodeVector(p.partial),
      signature: toBase64(p.signature),
    })),
    sum: encodeVector(result.sum),
    result: JSON.parse(JSON.stringify(result.result)),
    hospital: result.hospital,
  };
  const signature = await signTranscript(hospitalKey, "receipt", [canonicalJson(body)]);
  return { ...body, signature: toBase64(signature) };
}

const RECEIPT_KEYS = [
  "format",
  "session",
  "p",
  "query",
  "scale",
  "max",
  "maxRows",
  "mode",
  "threshold",
  "participants",
  "contributors",
  "partials",
  "sum",
  "result",
  "hospital",
  "signature",
];

function check(condition: boolean, reason: string): asserts condition {
  if (!condition) throw new InvalidReceiptError(reason);
}

function exactKeys(value: unknown, keys: string[], what: string): Record<string, unknown> {
  check(
    typeof value === "object" && value !== null && !Array.isArray(value),
    `${what} is not an object`,
  );
  check(
    Object.keys(value).sort().join(",") === [...keys].sort().join(","),
    `${what} must have exactly the fields ${keys.join(", ")}`,
  );
  return value as Record<string, unknown>;
}

function decimal(value: unknown, what: string): bigint {
  check(
    typeof value === "string" && /^(0|[1-9][0-9]{0,38})$/.test(value),
    `${what} is not a decimal integer`,
  );
  return BigInt(value);
}

/**
 * A whole number in [min, max]. Every number in a receipt is bounded here
 * before anything uses it: a hospital can sign anything, and an unbounded
 * scale, count or length would cost time or memory before a check fails.
 */
function wholeNumber(value: unknown, what: string, min: number, max: number): number {
  check(
    typeof value === "number" && Number.isSafeInteger(value) && value >= min && value <= max,
    `${what} is not a whole number from ${min} to ${max}`,
  );
  return value;
}

/** A string of at most `maxLength` characters. */
function boundedText(value: unknown, maxLength: number, what: string): string {
  check(typeof value === "string", `${what} is not text`);
  check(value.length <= maxLength, `${what} is longer than ${maxLength} characters`);
  return value;
}

/** A list of at most `maxLength` items. */
function boundedList(value: unknown, maxLength: number, what: string): unknown[] {
  check(Array.isArray(value), `${what} is not a list`);
  check(value.length <= maxLength, `${what} has more than ${maxLength} items`);
  return value;
}

/** A certificate PEM is under 1 KiB; this leaves room for long SAN lists. */
const MAX_CERT_CHARS = 16 * 1024;

/** Far longer than any query this build writes ("histogram:LOW:HIGH:BINS"). */
const MAX_QUERY_CHARS = 200;

/** The most rows a round may allow per peer, as `--max-rows` accepts. */
const MAX_ROWS_LIMIT = 2 ** 31;

/** A receipt nests 4 levels deep; anything far deeper is refused unread. */
const MAX_DEPTH = 16;

/** base64 of a 64-byte P-256 signature. */
const SIGNATURE_CHARS = base64Length(64);

function sortedNames(value: unknown, what: string): string[] {
  check(
    Array.isArray(value) && value.length <= MAX_PARTICIPANTS &&
      value.every((n) => typeof n === "string" && isPartyName(n)),
    `${what} is not a list of at most ${MAX_PARTICIPANTS} names`,
  );
  const names = value as string[];
  check(
    names.every((n, i) => i === 0 || names[i - 1]! < n),
    `${what} is not sorted without repeats`,
  );
  return names;
}

/**
 * Checks a receipt against the consortium CA: every certificate chain, the
 * hospital's signature, every partial sum's signature, the sum recomputed
 * from the partial sums, and the statistics decoded from it. Throws
 * {@linkcode InvalidReceiptError}.
 */
export async function verifyReceipt(value: unknown, caPem: string): Promise<VerifiedReceipt> {
  const ca = await loadCaCertificate(caPem);
  const receipt = exactKeys(value, RECEIPT_KEYS, "receipt");
  const format = receipt["format"];
  check(
    format === RECEIPT_FORMAT,
    typeof format === "string" && format.length <= 40
      ? `unknown receipt format ${JSON.stringify(format)}`
      : "unknown receipt format",
  );

  const hospital = exactKeys(receipt["hospital"], ["name", "cert"], "hospital");
  check(
    typeof hospital["name"] === "string" && isPartyName(hospital["name"]),
    "hospital is malformed",
  );
  const hospitalName = hospital["name"];
  const hospitalCert = boundedText(hospital["cert"], MAX_CERT_CHARS, "hospital certificate");
  const hospitalParty = await verifyPartyCertificate(hospitalCert, ca, hospitalName).catch(
    (e) => {
      throw new InvalidReceiptError(`hospital certificate: ${(e as Error).message}`);
    },
  );
  const { signature: signatureText, ...body } = receipt;
  check(
    typeof signatureText === "string" && signatureText.length === SIGNATURE_CHARS,
    "signature is not a 64-byte signature",
  );
  const hospitalSignature = fromBase64(signatureText, "signature");
  check(
    await verifyTranscript(hospitalParty.publicKey, hospitalSignature, "receipt", [
      canonicalJson(body),
    ]),
    "the hospital's signature does not match the receipt",
  );

  check(
    typeof receipt["session"] === "string" && /^[0-9a-f]{32}$/.test(receipt["session"]),
    "session is malformed",
  );
  const session = receipt["session"];
  check(decimal(receipt["p"], "p") === P_BIG, `p is not this build's p = ${P_BIG}`);
  const scale = wholeNumber(receipt["scale"], "scale", 0, MAX_SCALE);
  const queryText = boundedText(receipt["query"], MAX_QUERY_CHARS, "query");
  let query: Query;
  try {
    query = parseQuery(queryText, scale);
  } catch (error) {
    throw new InvalidReceiptError((error as Error).message);
  }
  check(formatQuery(query, scale) === queryText, "query is not in canonical form");
  const max = decimal(receipt["max"], "max");
  const maxRows = wholeNumber(receipt["maxRows"], "maxRows", 1, MAX_ROWS_LIMIT);
  const mode = receipt["mode"];
  check(mode === "additive" || mode === "threshold", "mode is neither additive nor threshold");
  const threshold = wholeNumber(receipt["threshold"], "threshold", 1, MAX_PARTICIPANTS);

  const participants = boundedList(receipt["participants"], MAX_PARTICIPANTS, "participants")
    .map((item, i) => {
      const p = exactKeys(item, ["name", "x", "cert"], `participants[${i}]`);
      check(typeof p["name"] === "string", `participants[${i}] is malformed`);
      check(p["x"] === i + 1, `participants[${i}] does not have evaluation point ${i + 1}`);
      const cert = boundedText(p["cert"], MAX_CERT_CHARS, `participants[${i}].cert`);
      return { name: p["name"], cert };
    });
  const names = sortedNames(participants.map((p) => p.name), "participants");
  const n = names.length;
  check(n >= 2, "fewer than 2 participants");
  check(!names.includes(hospitalName), "the hospital is listed as a participant");
  // The layout (residues per component) is recomputed from the terms, as
  // every party of the round did: it refuses terms that cannot be represented.
  let layout: Layout;
  try {
    layout = vectorLayout(query, { max, maxRows, participants: n });
  } catch (error) {
    throw new InvalidReceiptError((error as Error).message);
  }
  // Every peer refuses residues in a threshold round (Shamir shares live in
  // GF(p1) only), so no honest round has them.
  check(
    mode !== "threshold" || !hasResidues(layout),
    "a threshold round's totals need a wider field than threshold mode supports",
  );
  const { dimension: length, segments } = layout;
  const keys = new Map<string, CryptoKey>();
  for (const p of participants) {
    const party = await verifyPartyCertificate(p.cert, ca, p.name).catch((e) => {
      throw new InvalidReceiptError(`certificate of ${p.name}: ${(e as Error).message}`);
    });
    keys.set(p.name, party.publicKey);
  }

  const contributors = sortedNames(receipt["contributors"], "contributors");
  check(contributors.every((c) => names.includes(c)), "a contributor is not a participant");
  check(contributors.length >= 2, "fewer than 2 contributors");
  if (mode === "additive") {
    check(threshold === n, "an additive round's threshold must equal the number of participants");
    check(contributors.length === n, "an additive round's contributors must be every participant");
  } else {
    check(
      threshold * 2 > n && threshold <= n,
      `threshold ${threshold} is not above half of ${n} participants`,
    );
  }

  const partials = boundedList(receipt["partials"], n, "partials");
  const terms: RoundTerms = {
    session,
    mode,
    threshold,
    query: queryText,
    scale,
    participants: names,
    contributors,
  };
  const points: VectorPoint[] = [];
  const seen = new Set<string>();
  for (const [i, item] of partials.entries()) {
    const entry = exactKeys(item, ["name", "partial", "signature"], `partials[${i}]`);
    const name = entry["name"];
    check(typeof name === "string" && keys.has(name), `partials[${i}] is not from a participant`);
    check(!seen.has(name), `two partial sums from ${name}`);
    seen.add(name);
    const partial = decodeVector(entry["partial"], length, segments, `partial sum of ${name}`);
    check(
      typeof entry["signature"] === "string" && entry["signature"].length === SIGNATURE_CHARS,
      `signature of ${name}'s partial sum is not 64 bytes`,
    );
    const sig = fromBase64(entry["signature"], `signature of ${name}'s partial sum`);
    check(sig.length === 64, `signature of ${name}'s partial sum is not 64 bytes`);
    const fields = aggregateFields(terms, name, hospitalName, length, await vectorDigest(partial));
    check(
      await verifyTranscript(keys.get(name)!, sig, "aggregate", fields),
      `${name}'s signature does not match its partial sum`,
    );
    points.push({ x: evaluationPoint(names.indexOf(name)), y: partial });
  }
  let recomputed: Float64Array;
  if (mode === "additive") {
    check(
      points.length === n,
      `an additive round needs all ${n} partial sums, the receipt has ${points.length}`,
    );
    recomputed = new Float64Array(length);
    for (const p of points) addSegmentsInto(recomputed, p.y, segments);
  } else {
    check(
      points.length >= threshold,
      `${points.length} partial sums, fewer than the threshold ${threshold}`,
    );
    try {
      recomputed = reconstructShamirVector(points, threshold);
    } catch (error) {
      throw new InvalidReceiptError((error as Error).message);
    }
  }
  const sum = decodeVector(receipt["sum"], length, segments, "sum");
  check(
    sum.every((x, i) => x === recomputed[i]),
    "the sum does not equal the one recomputed from the signed partial sums",
  );
  // Each exact total (a fast-path element, or recombined from its residues)
  // is at most contributors × its bound, or some input was out of range.
  const totals = decodeTotals(layout, sum);
  const limit = BigInt(contributors.length);
  let t = 0;
  for (const { bound, count } of layout.components) {
    for (let i = 0; i < count; i++, t++) {
      check(totals[t]! <= limit * bound, "the sum is larger than the contributors' inputs allow");
    }
  }
  const result = decodeResult(query, sum, scale, layout);
  check(
    canonicalJson(result) === canonicalJson(receipt["result"]),
    "the result does not match the statistics decoded from the sum",
  );
  return {
    sum,
    result,
    query: queryText,
    session,
    mode,
    threshold,
    participants: names,
    contributors,
    hospital: hospitalName,
  };
}

/**
 * Parses a receipt file's text, refusing any object with the same key twice.
 *
 * `JSON.parse` keeps the last of two equal keys while other readers keep the
 * first, so a receipt with `"result"` twice could verify here and show a
 * forged result to another reader: a receipt must mean one thing to every
 * reader. No well-kept npm JSON parser refuses duplicates itself (momoa and
 * jsonc-parser hand every member to the caller to check), and bringing one in
 * would not be less code than this scan. `JSON.parse` checks the grammar
 * first, so the scan only has to tell keys from values, and it decodes each
 * key with `JSON.parse` too, so `"result"` and `"resul\u0074"` are the same
 * key here exactly as they are to the verifier. Throws
 * {@linkcode InvalidReceiptError}.
 */
export function parseReceipt(text: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new InvalidReceiptError("the file is not JSON");
  }
  assertUniqueKeys(text);
  return value;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const COLON = 0x3a;

/** Scans JSON text that `JSON.parse` accepted; refuses repeated keys and deep nesting. */
function assertUniqueKeys(text: string): void {
  // One entry per open container: an object's keys so far, or null for an array.
  const open: (Set<string> | null)[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      open.push(c === OPEN_OBJECT ? new Set() : null);
      check(open.length <= MAX_DEPTH, `the receipt nests deeper than ${MAX_DEPTH} levels`);
    } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
      open.pop();
    } else if (c === QUOTE) {
      const end = endOfString(text, i);
      const keys = open.at(-1);
      // In an object, a string followed by a colon is a key; any other is a value.
      if (keys && text.charCodeAt(skipSpace(text, end)) === COLON) {
        const key = JSON.parse(text.slice(i, end)) as string;
        check(
          !keys.has(key),
          `the key ${JSON.stringify(key.slice(0, 40))} appears twice in one object`,
        );
        keys.add(key);
      }
      i = end - 1;
    }
  }
}

/** The index just past the string literal that opens at `start`. */
function endOfString(text: string, start: number): number {
  for (let from = start + 1;;) {
    const quote = text.indexOf('"', from);
    check(quote !== -1, "the file is not JSON");
    let backslashes = 0;
    while (text.charCodeAt(quote - 1 - backslashes) === BACKSLASH) backslashes++;
    // An odd run of backslashes escapes this quote; an even one is escapes of its own.
    if (backslashes % 2 === 0) return quote + 1;
    from = quote + 1;
  }
}

/** The index of the first character at or after `i` that is not JSON whitespace. */
function skipSpace(text: string, i: number): number {
  while (i < text.length && " \t\n\r".includes(text[i]!)) i++;
  return i;
}

/** A system error's message without the path Deno appends (the caller names it already). */
function reason(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/: [a-z]+ '[^']*'$/, "");
}

/**
 * Checks, before a round starts, that a receipt can be written to `path`, so
 * that a round never finishes only to lose its receipt to a typo. An existing
 * file is opened for writing and left as it is; a new one is created (owner
 * only) and removed again. Throws {@linkcode FileError}.
 */
export async function checkReceiptTarget(path: string): Promise<void> {
  try {
    try {
      const file = await Deno.open(path, { write: true, createNew: true, mode: 0o600 });
      file.close();
      await Deno.remove(path);
    } catch (error) {
      if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
      const file = await Deno.open(path, { write: true });
      file.close();
    }
  } catch (cause) {
    throw new FileError(`Cannot write the receipt to ${path}: ${reason(cause)}`, { cause });
  }
}

/**
 * Writes `receipt` to `path`, readable and writable by the owner only (it
 * shows every partial sum and the result). A new file is created 0600; an
 * existing regular file is truncated and narrowed to 0600 before the receipt
 * is written into it, so its old, wider mode never covers the new content.
 * Other files (a device such as /dev/null) keep their mode. Throws
 * {@linkcode FileError}.
 */
export async function writeReceiptFile(path: string, receipt: Receipt): Promise<void> {
  const bytes = new TextEncoder().encode(JSON.stringify(receipt, null, 2) + "\n");
  try {
    const file = await Deno.open(path, { write: true, create: true, truncate: true, mode: 0o600 });
    try {
      const info = await file.stat();
      if (info.isFile && ((info.mode ?? 0) & 0o777) !== 0o600 && Deno.build.os !== "windows") {
        await Deno.chmod(path, 0o600);
      }
      for (let offset = 0; offset < bytes.length;) {
        offset += await file.write(bytes.subarray(offset));
      }
    } finally {
      file.close();
    }
  } catch (cause) {
    throw new FileError(`Cannot write the receipt to ${path}: ${reason(cause)}`, { cause });
  }
}
