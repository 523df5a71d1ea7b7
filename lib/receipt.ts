/**
 * Verifiable receipts: everything a third party needs to check a round's
 * result without trusting the hospital. A receipt holds the round's terms,
 * every participant's certificate, every signed partial sum and the
 * hospital's signature over all of it; `verifyReceipt` checks every chain and
 * signature and recomputes the sum from the signed partial sums.
 *
 * @module
 */

import { addShares } from "./sharing.ts";
import { isFieldElement, P } from "./field.ts";
import type { RoundResult } from "./hospital.ts";
import {
  loadCaCertificate,
  signTranscript,
  verifyPartyCertificate,
  verifyTranscript,
} from "./identity.ts";
import { isPartyName } from "./names.ts";
import { aggregateFields, type Mode, type RoundTerms } from "./round.ts";
import { evaluationPoint, reconstructShamir } from "./shamir.ts";

/** The receipt format this build writes and reads. */
export const RECEIPT_FORMAT = "sumshare-receipt/1";

/** A receipt as stored in JSON. Integers beyond 2^53 are decimal strings. */
export interface Receipt {
  format: string;
  session: string;
  p: string;
  max: string;
  mode: Mode;
  threshold: number;
  participants: { name: string; x: number; cert: string }[];
  contributors: string[];
  partials: { name: string; partial: string; signature: string }[];
  sum: string;
  hospital: { name: string; cert: string };
  signature: string;
}

/** Raised when a receipt does not check out; the message says what failed. */
export class InvalidReceiptError extends Error {
  override name = "InvalidReceiptError";
}

/** What a valid receipt proves. */
export interface VerifiedReceipt {
  sum: bigint;
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

function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

function fromBase64(text: string, what: string): Uint8Array {
  try {
    const bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
    if (toBase64(bytes) === text && bytes.length === 64) return bytes;
  } catch {
    // Reported below.
  }
  throw new InvalidReceiptError(`${what} is not a base64 64-byte signature`);
}

/** Builds and signs the receipt for a finished round. */
export async function createReceipt(result: RoundResult, hospitalKey: CryptoKey): Promise<Receipt> {
  const body: Omit<Receipt, "signature"> = {
    format: RECEIPT_FORMAT,
    session: result.session,
    p: result.p.toString(),
    max: result.max.toString(),
    mode: result.mode,
    threshold: result.threshold,
    participants: result.participants.map((p, i) => ({ name: p.name, x: i + 1, cert: p.cert })),
    contributors: result.contributors,
    partials: result.partials.map((p) => ({
      name: p.name,
      partial: p.partial.toString(),
      signature: toBase64(p.signature),
    })),
    sum: result.sum.toString(),
    hospital: result.hospital,
  };
  const signature = await signTranscript(hospitalKey, "receipt", [canonicalJson(body)]);
  return { ...body, signature: toBase64(signature) };
}

const RECEIPT_KEYS = [
  "format",
  "session",
  "p",
  "max",
  "mode",
  "threshold",
  "participants",
  "contributors",
  "partials",
  "sum",
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
  const actual = Object.keys(value).sort();
  check(
    actual.join(",") === [...keys].sort().join(","),
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
 * hospital's signature, every partial sum's signature, and the sum itself,
 * recomputed from the partial sums. Throws {@linkcode InvalidReceiptError}.
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
  const hospitalParty = await verifyPartyCertificate(hospital["cert"], ca, hospital["name"])
    .catch((e) => {
      throw new InvalidReceiptError(`hospital certificate: ${(e as Error).message}`);
    });
  const { signature: signatureText, ...body } = receipt;
  check(typeof signatureText === "string", "signature is missing");
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
  check(decimal(receipt["p"], "p") === P, `p is not this build's p = ${P}`);
  const max = decimal(receipt["max"], "max");
  const mode = receipt["mode"];
  check(mode === "additive" || mode === "threshold", "mode is neither additive nor threshold");
  const threshold = receipt["threshold"];
  check(
    typeof threshold === "number" && Number.isSafeInteger(threshold),
    "threshold is not a whole number",
  );

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
  check(BigInt(n) * max < P, "n·R is not below p: the sum could have wrapped");
  const keys = new Map<string, CryptoKey>();
  for (const p of participants) {
    const party = await verifyPartyCertificate(p.cert, ca, p.name).catch((e) => {
      throw new InvalidReceiptError(`certificate of ${p.name}: ${(e as Error).message}`);
    });
    keys.set(p.name, party.publicKey);
  }
  check(!names.includes(hospital["name"] as string), "the hospital is listed as a participant");

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
  const terms: RoundTerms = { session, mode, threshold, participants: names, contributors };
  const points: { x: bigint; y: bigint }[] = [];
  const seen = new Set<string>();
  for (const [i, item] of receipt["partials"].entries()) {
    const entry = exactKeys(item, ["name", "partial", "signature"], `partials[${i}]`);
    const name = entry["name"];
    check(typeof name === "string" && keys.has(name), `partials[${i}] is not from a participant`);
    check(!seen.has(name), `two partial sums from ${name}`);
    seen.add(name);
    const partial = decimal(entry["partial"], `partial sum of ${name}`);
    check(isFieldElement(partial), `partial sum of ${name} is not below p`);
    const sig = fromBase64(String(entry["signature"]), `signature of ${name}'s partial sum`);
    const fields = aggregateFields(terms, name, hospital["name"] as string, partial);
    check(
      await verifyTranscript(keys.get(name)!, sig, "aggregate", fields),
      `${name}'s signature does not match its partial sum`,
    );
    points.push({ x: evaluationPoint(names.indexOf(name)), y: partial });
  }
  let recomputed: bigint;
  if (mode === "additive") {
    check(
      points.length === n,
      `an additive round needs all ${n} partial sums, the receipt has ${points.length}`,
    );
    recomputed = addShares(points.map((p) => p.y));
  } else {
    check(
      points.length >= threshold,
      `${points.length} partial sums, fewer than the threshold ${threshold}`,
    );
    try {
      recomputed = reconstructShamir(points, threshold);
    } catch (error) {
      throw new InvalidReceiptError((error as Error).message);
    }
  }
  const sum = decimal(receipt["sum"], "sum");
  check(
    sum === recomputed,
    "the sum does not equal the one recomputed from the signed partial sums",
  );
  check(
    sum <= BigInt(contributors.length) * max,
    "the sum is larger than the contributors' inputs allow",
  );
  return {
    sum,
    session,
    mode,
    threshold,
    participants: names,
    contributors,
    hospital: hospital["name"] as string,
  };
}
