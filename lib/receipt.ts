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

import { fromCanonicalBase64, toBase64 } from "./encoding.ts";
import { addInto, isFieldVector, P_BIG } from "./field.ts";
import type { RoundResult } from "./hospital.ts";
import {
  loadCaCertificate,
  signTranscript,
  verifyPartyCertificate,
  verifyTranscript,
} from "./identity.ts";
import { isPartyName } from "./names.ts";
import {
  boundOf,
  decodeResult,
  dimension,
  elementBounds,
  formatQuery,
  parseQuery,
  type Query,
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

function encodeVector(v: Float64Array): string {
  return toBase64(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
}

function decodeVector(text: unknown, length: number, what: string): Float64Array {
  const bytes = fromBase64(text, what);
  check(bytes.length === length * 8, `${what} is not a vector of ${length} elements`);
  const v = new Float64Array(length);
  new Uint8Array(v.buffer).set(bytes);
  check(isFieldVector(v), `${what} holds a value that is not a field element`);
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

function wholeNumber(value: unknown, what: string): number {
  check(
    typeof value === "number" && Number.isSafeInteger(value) && value >= 0,
    `${what} is not a whole number`,
  );
  return value;
}

function sortedNames(value: unknown, what: string): string[] {
  check(
    Array.isArray(value) && value.every((n) => typeof n === "string" && isPartyName(n)),
    `${what} is not a list of names`,
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
  check(
    receipt["format"] === RECEIPT_FORMAT,
    `unknown receipt format ${JSON.stringify(receipt["format"])}`,
  );

  const hospital = exactKeys(receipt["hospital"], ["name", "cert"], "hospital");
  check(
    typeof hospital["name"] === "string" && typeof hospital["cert"] === "string",
    "hospital is malformed",
  );
  const hospitalName = hospital["name"];
  const hospitalParty = await verifyPartyCertificate(hospital["cert"], ca, hospitalName).catch(
    (e) => {
      throw new InvalidReceiptError(`hospital certificate: ${(e as Error).message}`);
    },
  );
  const { signature: signatureText, ...body } = receipt;
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
  const scale = wholeNumber(receipt["scale"], "scale");
  check(typeof receipt["query"] === "string", "query is not text");
  let query: Query;
  try {
    query = parseQuery(receipt["query"], scale);
  } catch (error) {
    throw new InvalidReceiptError((error as Error).message);
  }
  check(formatQuery(query, scale) === receipt["query"], "query is not in canonical form");
  const length = dimension(query);
  const max = decimal(receipt["max"], "max");
  const maxRows = wholeNumber(receipt["maxRows"], "maxRows");
  const mode = receipt["mode"];
  check(mode === "additive" || mode === "threshold", "mode is neither additive nor threshold");
  const threshold = wholeNumber(receipt["threshold"], "threshold");

  check(Array.isArray(receipt["participants"]), "participants is not a list");
  const participants = receipt["participants"].map((item, i) => {
    const p = exactKeys(item, ["name", "x", "cert"], `participants[${i}]`);
    check(
      typeof p["name"] === "string" && typeof p["cert"] === "string",
      `participants[${i}] is malformed`,
    );
    check(p["x"] === i + 1, `participants[${i}] has evaluation point ${p["x"]}, expected ${i + 1}`);
    return { name: p["name"], cert: p["cert"] };
  });
  const names = sortedNames(participants.map((p) => p.name), "participants");
  const n = names.length;
  check(n >= 2, "fewer than 2 participants");
  check(!names.includes(hospitalName), "the hospital is listed as a participant");
  const bounds = elementBounds(query, max, maxRows);
  for (const { label, bound } of bounds) {
    check(BigInt(n) * bound < P_BIG, `n × ${label} is not below p: the sum could have wrapped`);
  }
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

  check(Array.isArray(receipt["partials"]), "partials is not a list");
  const terms: RoundTerms = {
    session,
    mode,
    threshold,
    query: receipt["query"],
    scale,
    participants: names,
    contributors,
  };
  const points: VectorPoint[] = [];
  const seen = new Set<string>();
  for (const [i, item] of receipt["partials"].entries()) {
    const entry = exactKeys(item, ["name", "partial", "signature"], `partials[${i}]`);
    const name = entry["name"];
    check(typeof name === "string" && keys.has(name), `partials[${i}] is not from a participant`);
    check(!seen.has(name), `two partial sums from ${name}`);
    seen.add(name);
    const partial = decodeVector(entry["partial"], length, `partial sum of ${name}`);
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
    for (const p of points) addInto(recomputed, p.y);
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
  const sum = decodeVector(receipt["sum"], length, "sum");
  check(
    sum.every((x, i) => x === recomputed[i]),
    "the sum does not equal the one recomputed from the signed partial sums",
  );
  check(
    sum.every((x, i) => BigInt(x) <= BigInt(contributors.length) * boundOf(query, bounds, i)),
    "the sum is larger than the contributors' inputs allow",
  );
  const result = decodeResult(query, sum, scale);
  check(
    canonicalJson(result) === canonicalJson(receipt["result"]),
    "the result does not match the statistics decoded from the sum",
  );
  return {
    sum,
    result,
    query: receipt["query"],
    session,
    mode,
    threshold,
    participants: names,
    contributors,
    hospital: hospitalName,
  };
}
