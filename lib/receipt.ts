/**
 * Receipts of the star protocol (v2), format `sumshare-receipt/7`: every
 * signed statement of a completed round (lib/protocol/evidence.ts
 * `RoundEvidence`), the summed vector, the statistics decoded from it, and
 * the hospital's signature over all of it. `verifyStarReceipt` checks every
 * certificate and every signature again from the consortium CA alone, so a
 * third party need not trust the hospital.
 *
 * ## What a valid v2 receipt proves
 *
 * - Who took part: the START roster, each member's certificate chaining to
 *   the CA (peer policy) and its JOIN signature over its session keys.
 * - The terms each confirmed: the hospital signed the terms in INVITE, and
 *   every member of the set (and every other listed confirmer) signed
 *   CONFIRM over the START hash, which covers the session, the terms' exact
 *   bytes (query, scale, max, maxRows, mode, threshold, minContributors,
 *   participants N, dimension, deadlines) and the whole roster. So neither
 *   `max` nor `maxRows` nor the roster can be re-signed by the hospital
 *   alone.
 * - The digest each survivor committed to: an INPUT signature per member of
 *   the set over (session, START hash, length = dimension, digest of its
 *   masked vector, commitment to its self seed — all zeros in n-of-n —,
 *   partner set), and each member's partner set holds the whole set.
 * - The set: in threshold rounds at least T members of the set signed
 *   CONSISTENCY over this exact set, and |set| ≥ max(T, minContributors);
 *   in n-of-n rounds the set is the whole roster.
 * - That the hospital published this result: its DONE signature over
 *   (session, START hash, set, digest of the result), the result's length
 *   and field elements are the layout's, every total is at most |set| times
 *   its bound, and the statistics are the ones decoded from it.
 * - When every member of the set attested: that the result is the unmasked
 *   sum of the masked vectors the members sent, by a random linear check
 *   (docs/protocol.md §8.7). The challenge r is drawn from a hash of DONE's
 *   fields, so it did not exist before the hospital signed the result; each
 *   member signed a_m = ⟨r, y_m⟩ per segment afterwards. The verifier
 *   removes the same masks the hospital removed — each member's self seed
 *   (checked against its seedCommit) and each dropped holder's pairwise
 *   masks (from its mask scalar, checked against its maskKey) — and checks
 *   ⟨r, result + masks⟩ ≡ Σ a_m per segment, for each of two independent
 *   challenges r. A result off by e ≠ 0 passes only if ⟨r, e⟩ ≡ 0 for both
 *   in every segment: probability about 2^-104 per choice of result. When some member did not attest the check cannot be
 *   made: the receipt is valid and says the result is not proven, naming
 *   them; everything else above still holds.
 *
 * ## What it does not prove
 *
 * - That any input was honest (a peer may commit to any values in range).
 * - That no honest peer was excluded (a hospital may leave a peer out of the
 *   roster or the set, within the floors the peers enforce).
 *
 * ## Format
 *
 * Byte strings are canonical padded base64, hashes and digests lowercase
 * hex, `max` a decimal string, vectors base64 of their binary64
 * little-endian bytes. Only the result is a vector, so receipts stay small
 * however long the vectors are. The hospital's `signature` is ECDSA P-256
 * over the v2 signing input with purpose "receipt" and one field, the
 * canonical JSON ({@linkcode canonicalJson}) of every other field.
 *
 * Reading is strict: exact keys, every number and length bounded before
 * use, and {@linkcode parseReceipt} reads the text with the protocol's
 * strict JSON reader (lib/wire/strict_json.ts), which refuses duplicate keys.
 *
 * @module
 */

import { MAX_SCALE } from "./decimal.ts";
import { fromCanonicalBase64, toBase64, toHex } from "./encoding.ts";
import { FileError } from "./errors.ts";
import { probeWritable } from "./writable.ts";
import { isSegmentedFieldVector, P, P_BIG } from "./field.ts";
import { loadCaCertificate, verifyPartyCertificate } from "./identity.ts";
import { isPartyName } from "./names.ts";
import { parseStrictJson } from "./wire/strict_json.ts";
import { decodeResult, type Layout, type Query, totalsWithinBounds } from "./query.ts";
import { vectorDigest } from "./crypto/digest.ts";
import { bytesEqual, fromHex, lp } from "./crypto/bytes.ts";
import { verify } from "./crypto/signing.ts";
import { importPublicKey, pairwiseSeed } from "./crypto/agreement.ts";
import {
  attestedModulus,
  attestedProducts,
  CHALLENGES,
  isAttestedShape,
} from "./crypto/linear_check.ts";
import { rebuildMaskKey } from "./crypto/mask_key.ts";
import { applyMask, pairSign } from "./crypto/masks.ts";
import type { RoundEvidence } from "./protocol/evidence.ts";
import { bitmapMembers } from "./protocol/partners.ts";
import { rosterProblem, shapeOf } from "./protocol/terms.ts";
import {
  attestFields,
  confirmFields,
  consistencyFields,
  doneFields,
  inputFields,
  inviteFields,
  joinFields,
  linearCheckSeed,
  NO_SEED_COMMIT,
  seedCommitment,
  startHash,
} from "./protocol/transcript.ts";
import {
  type Deadlines,
  MAX_ATTESTED_VALUES,
  MAX_DIMENSION,
  MAX_PARTICIPANTS,
  type Mode,
  type Participant,
  type Terms,
} from "./wire/messages.ts";

/** The receipt format this module writes and reads. */
export const RECEIPT_FORMAT = "sumshare-receipt/7";

/** The round's terms as a receipt stores them (`max` as a decimal string). */
export interface ReceiptTerms {
  query: string;
  scale: number;
  max: string;
  maxRows: number;
  mode: Mode;
  threshold: number;
  minContributors: number;
  participants: number;
  dimension: number;
  deadlines?: Deadlines;
}

/** A party's signature, base64. */
export interface ReceiptSignature {
  name: string;
  signature: string;
}

/** A v2 receipt as stored in JSON. */
export interface Receipt {
  format: string;
  session: string;
  terms: ReceiptTerms;
  hospital: { name: string; cert: string };
  /** The hospital's INVITE signature over (session, terms). */
  inviteSignature: string;
  /** The START roster, sorted by name; keys and JOIN signatures base64. */
  roster: { name: string; cert: string; sealKey: string; maskKey: string; signature: string }[];
  /** SHA-256 of the START transcript, hex. */
  startHash: string;
  confirmations: ReceiptSignature[];
  /** One INPUT commitment per member of `set`, sorted by name. */
  inputs: {
    name: string;
    length: number;
    digest: string;
    seedCommit: string;
    partners: string;
    signature: string;
  }[];
  set: string[];
  /** CONSISTENCY signatures on `set` (empty in n-of-n rounds). */
  consistency: ReceiptSignature[];
  /** The result: the sum over `set`, base64 of binary64 little-endian. */
  sum: string;
  /** vectorDigest of the sum, hex (as signed in DONE). */
  resultDigest: string;
  /** The hospital's DONE signature over (session, startHash, set, resultDigest). */
  doneSignature: string;
  /** The statistics decoded from the sum. */
  result: Record<string, unknown>;
  /** ATTEST of members of `set`, sorted by name: ⟨r, y⟩ per segment, signed after DONE. */
  attestations: { name: string; values: number[]; signature: string }[];
  /** Threshold: each member of `set`'s rebuilt self seed, base64, sorted (n-of-n: empty). */
  selfSeeds: { name: string; seed: string }[];
  /** Threshold: each dropped holder's rebuilt mask scalar, base64, sorted (often empty). */
  maskSecrets: { name: string; secret: string }[];
  /** The hospital's signature over the canonical JSON of every other field. */
  signature: string;
}

/** Raised when a receipt does not check out; the message says what failed. */
export class InvalidReceiptError extends Error {
  override name = "InvalidReceiptError";
}

/** What a valid v2 receipt shows (see the module doc for what that proves). */
export interface VerifiedStarReceipt {
  /** The summed vector over `contributors`, segmented by the round's layout. */
  sum: Float64Array;
  /** The statistics decoded from `sum`. */
  result: Record<string, unknown>;
  query: string;
  session: string;
  mode: Mode;
  /** T in threshold rounds, 0 in n-of-n rounds. */
  threshold: number;
  /** The terms, exactly as the hospital signed them and the peers confirmed them. */
  terms: Terms;
  /** The START roster's names, sorted. */
  participants: string[];
  /** Whose confirmations of the START hash the receipt holds, sorted. */
  confirmed: string[];
  /** The set: whose inputs the sum covers, sorted. */
  contributors: string[];
  /** The set members whose CONSISTENCY signatures the receipt holds (empty in n-of-n). */
  agreed: string[];
  /** The START hash, hex. */
  startHash: string;
  resultDigest: string;
  /** The hospital's name. */
  hospital: string;
  /**
   * "proven": every member of the set attested and the linear check holds;
   * "not proven": some did not attest (`unattested`), so it cannot be made.
   * A check that fails makes the receipt invalid instead.
   */
  linearCheck: "proven" | "not proven";
  /** Members of the set without an attestation in the receipt, sorted. */
  unattested: string[];
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

const ECDSA = { name: "ECDSA", hash: "SHA-256" } as const;

/**
 * The bytes of the hospital's receipt signature: the v2 signing input
 * (lib/crypto/signing.ts) for purpose "receipt" with one field, the
 * canonical JSON of the body. Spelled out here because signing.ts's
 * `Purpose` does not list "receipt" yet; the framing is the same, so no v2
 * signature of another purpose can be taken for a receipt's.
 */
function receiptSigningInput(body: Record<string, unknown>): Uint8Array<ArrayBuffer> {
  return lp("sumshare/2 receipt", canonicalJson(body));
}

function encodeVector(v: Float64Array): string {
  return toBase64(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
}

function termsJson(terms: Terms): ReceiptTerms {
  const { deadlines, ...rest } = terms;
  return {
    ...rest,
    max: terms.max.toString(),
    ...(deadlines === undefined ? {} : { deadlines: { ...deadlines } }),
  };
}

function signedJson(list: readonly { name: string; signature: Uint8Array }[]): ReceiptSignature[] {
  return list.map(({ name, signature }) => ({ name, signature: toBase64(signature) }));
}

/**
 * Builds and signs the receipt of a completed round from its evidence and
 * its result (the sum over `evidence.set`, segmented by the round's layout).
 * The statistics are decoded from `result` here, so a receipt is never
 * written with statistics its sum does not give. Throws
 * {@linkcode InvalidReceiptError} if `result` does not match the evidence's
 * digest or cannot be decoded under its terms.
 */
export async function createStarReceipt(
  evidence: RoundEvidence,
  result: Float64Array,
  signingKey: CryptoKey,
): Promise<Receipt> {
  // A sparse round's consistency signatures are over window views and its
  // DONE over a set digest (docs/protocol.md §18): format /7 cannot carry
  // or check them, so no receipt is written that `verify` would refuse.
  check(
    evidence.terms.neighbors === undefined,
    "receipts of sparse rounds (neighbors) are not supported yet",
  );
  check(
    (await vectorDigest(result)) === evidence.resultDigest,
    "the result does not match the digest the hospital signed in DONE",
  );
  const { query, layout } = roundShape(evidence.terms);
  const body: Omit<Receipt, "signature"> = {
    format: RECEIPT_FORMAT,
    session: evidence.session,
    terms: termsJson(evidence.terms),
    hospital: { name: evidence.hospital.name, cert: evidence.hospital.cert },
    inviteSignature: toBase64(evidence.inviteSignature),
    roster: evidence.roster.map((p) => ({
      name: p.name,
      cert: p.cert,
      sealKey: toBase64(p.sealKey),
      maskKey: toBase64(p.maskKey),
      signature: toBase64(p.signature),
    })),
    startHash: toHex(evidence.startHash),
    confirmations: signedJson(byName(evidence.confirmations)),
    inputs: byName(evidence.inputs).map((c) => ({
      name: c.name,
      length: c.length,
      digest: c.digest,
      seedCommit: c.seedCommit,
      partners: c.partners,
      signature: toBase64(c.signature),
    })),
    set: [...evidence.set],
    consistency: signedJson(byName(evidence.consistency)),
    sum: encodeVector(result),
    resultDigest: evidence.resultDigest,
    doneSignature: toBase64(evidence.doneSignature),
    result: JSON.parse(
      JSON.stringify(decoded(query, result, evidence.terms.scale, layout)),
    ) as Record<string, unknown>,
    attestations: byName(evidence.attestations).map((a) => ({
      name: a.name,
      values: [...a.values],
      signature: toBase64(a.signature),
    })),
    selfSeeds: byName(evidence.selfSeeds).map((b) => ({
      name: b.name,
      seed: toBase64(b.secret),
    })),
    maskSecrets: byName(evidence.maskSecrets).map((d) => ({
      name: d.name,
      secret: toBase64(d.secret),
    })),
  };
  const signature = new Uint8Array(
    await crypto.subtle.sign(ECDSA, signingKey, receiptSigningInput(body)),
  );
  return { ...body, signature: toBase64(signature) };
}

/** A copy of `list` sorted by name, as the receipt lists every signer. */
function byName<T extends { name: string }>(list: readonly T[]): T[] {
  return [...list].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function decoded(
  query: Query,
  sum: Float64Array,
  scale: number,
  layout: Layout,
): Record<string, unknown> {
  try {
    return decodeResult(query, sum, scale, layout);
  } catch (error) {
    throw new InvalidReceiptError(`the sum cannot be decoded: ${(error as Error).message}`);
  }
}

function roundShape(terms: Terms): { query: Query; layout: Layout } {
  const shape = shapeOf(terms);
  check(typeof shape !== "string", `the terms cannot be run: ${shape}`);
  return shape;
}

// ---------------------------------------------------------------------------
// Strict reading: every field's type, spelling and size before it is used.

function check(condition: boolean, reason: string): asserts condition {
  if (!condition) throw new InvalidReceiptError(reason);
}

const RECEIPT_KEYS = [
  "format",
  "session",
  "terms",
  "hospital",
  "inviteSignature",
  "roster",
  "startHash",
  "confirmations",
  "inputs",
  "set",
  "consistency",
  "sum",
  "resultDigest",
  "doneSignature",
  "result",
  "attestations",
  "selfSeeds",
  "maskSecrets",
  "signature",
];

const TERMS_KEYS = [
  "query",
  "scale",
  "max",
  "maxRows",
  "mode",
  "threshold",
  "minContributors",
  "participants",
  "dimension",
];

const DEADLINE_KEYS = ["joinMs", "confirmMs", "shareMs", "inputMs", "consistencyMs", "unmaskMs"];

/** Far longer than any query this build writes ("histogram:LOW:HIGH:BINS"), as the wire allows. */
const MAX_QUERY_CHARS = 200;

/** The most rows a round may allow per peer, as the wire allows. */
const MAX_ROWS_LIMIT = 2 ** 31;

/** The longest deadline the wire allows: a day. */
const MAX_DEADLINE_MS = 86_400_000;

/** A certificate PEM is under 1 KiB; the wire allows 8 KiB. */
const MAX_CERT_CHARS = 8192;

/** A receipt nests 4 levels deep; anything far deeper is refused unread. */
const MAX_DEPTH = 16;

/** One PEM certificate block, as the wire accepts it (one spelling per certificate). */
const PEM_CERT =
  /^-----BEGIN CERTIFICATE-----\n(?:[A-Za-z0-9+/]{1,64}\n)+?(?:[A-Za-z0-9+/=]{1,64}\n)?-----END CERTIFICATE-----\n?$/;

/** The length of the padded base64 text of `bytes` bytes. */
function base64Length(bytes: number): number {
  return 4 * Math.ceil(bytes / 3);
}

function exactKeys(
  value: unknown,
  keys: readonly string[],
  what: string,
  optional: readonly string[] = [],
): Record<string, unknown> {
  check(
    typeof value === "object" && value !== null && !Array.isArray(value),
    `${what} is not an object`,
  );
  const present = Object.keys(value).filter((k) => !optional.includes(k));
  check(
    present.sort().join(",") === [...keys].sort().join(","),
    `${what} must have exactly the fields ${keys.join(", ")}${
      optional.length ? ` (and optionally ${optional.join(", ")})` : ""
    }`,
  );
  return value as Record<string, unknown>;
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

/** A list of `min` to `max` items. */
function boundedList(value: unknown, min: number, max: number, what: string): unknown[] {
  check(Array.isArray(value), `${what} is not a list`);
  check(value.length <= max, `${what} has more than ${max} items`);
  check(value.length >= min, `${what} has fewer than ${min} items`);
  return value;
}

/** Exactly `length` bytes as canonical padded base64 (length checked before decoding). */
function bytesField(value: unknown, length: number, what: string): Uint8Array {
  check(
    typeof value === "string" && value.length === base64Length(length),
    `${what} is not ${length} bytes of base64`,
  );
  const bytes = fromCanonicalBase64(value);
  check(bytes !== undefined && bytes.length === length, `${what} is not canonical base64`);
  return bytes;
}

function signatureField(value: unknown, what: string): Uint8Array {
  return bytesField(value, 64, what);
}

/** 32 bytes as 64 lowercase hex digits. */
function hashField(value: unknown, what: string): string {
  check(typeof value === "string" && /^[0-9a-f]{64}$/.test(value), `${what} is not 64 hex digits`);
  return value;
}

/** A partner bitmap of 1 to 63 bytes, lowercase hex (its length is checked against the roster). */
function bitmapField(value: unknown, what: string): string {
  check(
    typeof value === "string" && /^([0-9a-f]{2}){1,63}$/.test(value),
    `${what} is not a bitmap in lowercase hex`,
  );
  return value;
}

function nameField(value: unknown, what: string): string {
  check(typeof value === "string" && isPartyName(value), `${what} is not a party name`);
  return value;
}

function certField(value: unknown, what: string): string {
  const text = boundedText(value, MAX_CERT_CHARS, what);
  check(PEM_CERT.test(text), `${what} is not one PEM certificate`);
  return text;
}

/** Names strictly ascending: no repeats, one spelling per set. */
function assertSorted(names: readonly string[], what: string): void {
  check(
    names.every((n, i) => i === 0 || names[i - 1]! < n),
    `${what} is not sorted by name without repeats`,
  );
}

function sortedNames(value: unknown, what: string): string[] {
  const names = boundedList(value, 1, MAX_PARTICIPANTS, what).map((n, i) =>
    nameField(n, `${what}[${i}]`)
  );
  assertSorted(names, what);
  return names;
}

/** A list of {name, signature}, sorted by name. */
function signatures(
  value: unknown,
  min: number,
  what: string,
): { name: string; signature: Uint8Array }[] {
  const list = boundedList(value, min, MAX_PARTICIPANTS, what).map((item, i) => {
    const entry = exactKeys(item, ["name", "signature"], `${what}[${i}]`);
    return {
      name: nameField(entry["name"], `${what}[${i}].name`),
      signature: signatureField(entry["signature"], `${what}[${i}].signature`),
    };
  });
  assertSorted(list.map((s) => s.name), what);
  return list;
}

function readTerms(value: unknown): Terms {
  const t = exactKeys(value, TERMS_KEYS, "terms", ["deadlines"]);
  const max = t["max"];
  check(
    typeof max === "string" && /^(0|[1-9][0-9]{0,38})$/.test(max) && BigInt(max) < P_BIG,
    `terms.max is not a decimal integer below p = ${P_BIG}`,
  );
  const mode = t["mode"];
  check(mode === "nofn" || mode === "threshold", 'terms.mode is neither "nofn" nor "threshold"');
  const terms: Terms = {
    query: boundedText(t["query"], MAX_QUERY_CHARS, "terms.query"),
    scale: wholeNumber(t["scale"], "terms.scale", 0, MAX_SCALE),
    max: BigInt(max),
    maxRows: wholeNumber(t["maxRows"], "terms.maxRows", 1, MAX_ROWS_LIMIT),
    mode,
    threshold: wholeNumber(t["threshold"], "terms.threshold", 0, MAX_PARTICIPANTS),
    minContributors: wholeNumber(
      t["minContributors"],
      "terms.minContributors",
      1,
      MAX_PARTICIPANTS,
    ),
    participants: wholeNumber(t["participants"], "terms.participants", 2, MAX_PARTICIPANTS),
    dimension: wholeNumber(t["dimension"], "terms.dimension", 1, MAX_DIMENSION),
  };
  if (Object.hasOwn(t, "deadlines")) {
    const d = exactKeys(t["deadlines"], DEADLINE_KEYS, "terms.deadlines");
    const ms = (key: string) => wholeNumber(d[key], `terms.deadlines.${key}`, 1, MAX_DEADLINE_MS);
    terms.deadlines = {
      joinMs: ms("joinMs"),
      confirmMs: ms("confirmMs"),
      shareMs: ms("shareMs"),
      inputMs: ms("inputMs"),
      consistencyMs: ms("consistencyMs"),
      unmaskMs: ms("unmaskMs"),
    };
  }
  return terms;
}

function readRoster(value: unknown, most: number): Participant[] {
  const roster = boundedList(value, 2, most, "roster").map((item, i): Participant => {
    const where = `roster[${i}]`;
    const p = exactKeys(item, ["name", "cert", "sealKey", "maskKey", "signature"], where);
    return {
      name: nameField(p["name"], `${where}.name`),
      cert: certField(p["cert"], `${where}.cert`),
      sealKey: bytesField(p["sealKey"], 65, `${where}.sealKey`),
      maskKey: bytesField(p["maskKey"], 65, `${where}.maskKey`),
      signature: signatureField(p["signature"], `${where}.signature`),
    };
  });
  assertSorted(roster.map((p) => p.name), "roster");
  return roster;
}

/**
 * A vector of the round's layout: `length` elements, each a canonical
 * element of its segment's field. The text's length is checked before
 * decoding, so a huge string costs no huge allocation.
 */
function readVector(value: unknown, layout: Layout, what: string): Float64Array {
  const length = layout.dimension;
  check(
    typeof value === "string" && value.length === base64Length(length * 8),
    `${what} is not a vector of ${length} elements`,
  );
  const bytes = fromCanonicalBase64(value);
  check(bytes !== undefined && bytes.length === length * 8, `${what} is not canonical base64`);
  const v = new Float64Array(length);
  new Uint8Array(v.buffer).set(bytes);
  // Also refuses −0, NaN and fractions: one spelling per vector.
  check(
    isSegmentedFieldVector(v, layout.segments),
    `${what} holds a value that is not a field element of its segment`,
  );
  return v;
}

/**
 * Checks a v2 receipt against the consortium CA and returns what it shows;
 * throws {@linkcode InvalidReceiptError} naming the first check that fails.
 * In order: exact keys and bounds of every field; the hospital certificate
 * (hospital policy) and the hospital's receipt signature; the terms can be
 * run and the INVITE signature covers them; every roster certificate (peer
 * policy) and JOIN signature; the START hash recomputed from terms and
 * roster; the confirmations (distinct roster members, at least T, all N in
 * n-of-n, every set member among them); the set (⊆ roster, the floors, the
 * whole roster in n-of-n); one INPUT commitment per set member; at least T
 * CONSISTENCY signatures on the set from set members (threshold); the sum's
 * digest and the DONE signature; the sum within |set| × each bound; the
 * statistics decoded from the sum.
 */
export async function verifyStarReceipt(
  value: unknown,
  caPem: string,
): Promise<VerifiedStarReceipt> {
  // A CA that cannot be loaded is the verifier's problem, not the receipt's:
  // its error (AuthError) passes through, as it always has.
  const ca = await loadCaCertificate(caPem);
  const receipt = exactKeys(value, RECEIPT_KEYS, "receipt");
  const format = receipt["format"];
  check(
    format === RECEIPT_FORMAT,
    typeof format === "string" && format.length <= 40
      ? `unknown receipt format ${JSON.stringify(format)}`
      : "unknown receipt format",
  );

  // The hospital and its signature over the rest first: every later reason
  // is then about what the hospital itself signed.
  const hospital = exactKeys(receipt["hospital"], ["name", "cert"], "hospital");
  const hospitalName = nameField(hospital["name"], "hospital.name");
  const hospitalCert = certField(hospital["cert"], "hospital.cert");
  const hospitalKey = await verifyPartyCertificate(hospitalCert, ca, hospitalName, {
    use: "hospital",
  }).then((party) => party.publicKey, (e) => {
    throw new InvalidReceiptError(`hospital certificate: ${(e as Error).message}`);
  });
  const { signature: signatureText, ...body } = receipt;
  const receiptSignature = signatureField(signatureText, "signature");
  check(
    await crypto.subtle.verify(
      ECDSA,
      hospitalKey,
      receiptSignature as Uint8Array<ArrayBuffer>,
      receiptSigningInput(body),
    ),
    "the hospital's signature does not match the receipt",
  );

  // Every field read and bounded before any of it is used.
  check(
    typeof receipt["session"] === "string" && /^[0-9a-f]{32}$/.test(receipt["session"]),
    "session is not 32 lowercase hex digits",
  );
  const session = receipt["session"];
  const terms = readTerms(receipt["terms"]);
  const inviteSignature = signatureField(receipt["inviteSignature"], "inviteSignature");
  const roster = readRoster(receipt["roster"], terms.participants);
  const names = roster.map((p) => p.name);
  const hash = hashField(receipt["startHash"], "startHash");
  const confirmations = signatures(receipt["confirmations"], 1, "confirmations");
  const set = sortedNames(receipt["set"], "set");
  const inputs = boundedList(receipt["inputs"], 1, MAX_PARTICIPANTS, "inputs").map((item, i) => {
    const where = `inputs[${i}]`;
    const entry = exactKeys(
      item,
      ["name", "length", "digest", "seedCommit", "partners", "signature"],
      where,
    );
    return {
      name: nameField(entry["name"], `${where}.name`),
      length: wholeNumber(entry["length"], `${where}.length`, 1, MAX_DIMENSION),
      digest: hashField(entry["digest"], `${where}.digest`),
      seedCommit: hashField(entry["seedCommit"], `${where}.seedCommit`),
      partners: bitmapField(entry["partners"], `${where}.partners`),
      signature: signatureField(entry["signature"], `${where}.signature`),
    };
  });
  assertSorted(inputs.map((c) => c.name), "inputs");
  const consistency = signatures(receipt["consistency"], 0, "consistency");
  const resultDigest = hashField(receipt["resultDigest"], "resultDigest");
  const doneSignature = signatureField(receipt["doneSignature"], "doneSignature");
  const attestations = readAttestations(receipt["attestations"]);
  const selfSeeds = readSecrets(receipt["selfSeeds"], "selfSeeds", "seed");
  const maskSecrets = readSecrets(receipt["maskSecrets"], "maskSecrets", "secret");

  // The terms: runnable as every peer checked them, and the hospital's.
  const { query, layout } = roundShape(terms);
  check(
    await verify(hospitalKey, inviteSignature, "invite", inviteFields(session, terms)),
    "the INVITE signature does not match the session and terms",
  );

  // The roster: each member's certificate and its JOIN signature.
  check(!names.includes(hospitalName), "the hospital is listed in the roster");
  const problem = rosterProblem(terms, roster.length);
  check(problem === undefined, `the roster cannot run the terms: ${problem}`);
  const keys = new Map<string, CryptoKey>();
  for (const p of roster) {
    const key = await verifyPartyCertificate(p.cert, ca, p.name, { use: "peer" }).then(
      (party) => party.publicKey,
      (e) => {
        throw new InvalidReceiptError(`certificate of ${p.name}: ${(e as Error).message}`);
      },
    );
    check(
      await verify(key, p.signature, "join", joinFields(session, p.name, p.sealKey, p.maskKey)),
      `the JOIN signature of ${p.name} does not match its session keys`,
    );
    keys.set(p.name, key);
  }
  const startBytes = fromHex(hash);
  check(
    bytesEqual(await startHash(session, terms, roster), startBytes),
    "startHash is not the hash of the terms and roster",
  );

  // Confirmations of this START hash: the terms and roster each confirmer saw.
  const nofn = terms.mode === "nofn";
  const confirmed = confirmations.map((c) => c.name);
  for (const { name, signature } of confirmations) {
    const key = keys.get(name);
    check(key !== undefined, `the confirmation of ${name} is not from a roster member`);
    check(
      await verify(key, signature, "confirm", confirmFields(session, startBytes)),
      `the confirmation of ${name} does not match the START hash`,
    );
  }
  const needConfirmations = nofn ? roster.length : terms.threshold;
  check(
    confirmations.length >= needConfirmations,
    `${confirmations.length} confirmations, fewer than the ${needConfirmations} needed`,
  );

  // The set.
  check(set.every((n) => keys.has(n)), "a member of the set is not in the roster");
  if (nofn) {
    check(set.length === roster.length, "an n-of-n round's set is not the whole roster");
  } else {
    const floor = Math.max(terms.threshold, terms.minContributors);
    check(set.length >= floor, `the set has ${set.length} members, fewer than the ${floor} needed`);
  }
  check(
    set.every((n) => confirmed.includes(n)),
    "a member of the set did not confirm the START hash",
  );

  // One INPUT commitment per member of the set.
  check(
    inputs.length === set.length && inputs.every((c, i) => c.name === set[i]),
    "the inputs are not one commitment per member of the set",
  );
  for (const c of inputs) {
    check(
      c.length === terms.dimension,
      `the input of ${c.name} has ${c.length} elements, not the dimension ${terms.dimension}`,
    );
    check(
      !nofn || c.seedCommit === NO_SEED_COMMIT,
      `the input of ${c.name} commits to a self seed in an n-of-n round`,
    );
    // What every member checked before signing the set: each member masked
    // with all the others, so no member's input could be unmasked alone.
    const partners = bitmapMembers(c.partners, names);
    check(partners !== undefined, `the partner set of ${c.name} is not a bitmap of the roster`);
    check(
      set.every((n) => partners.includes(n)),
      `${c.name} did not mask with every member of the set`,
    );
    check(
      await verify(keys.get(c.name)!, c.signature, "input", inputFields(session, startBytes, c)),
      `the input commitment of ${c.name} does not match its signature`,
    );
  }

  // Consistency: at least T members of the set signed this exact set.
  if (nofn) {
    check(consistency.length === 0, "an n-of-n round has no consistency signatures");
  } else {
    for (const { name, signature } of consistency) {
      check(set.includes(name), `the consistency signature of ${name} is not from the set`);
      check(
        await verify(
          keys.get(name)!,
          signature,
          "consistency",
          consistencyFields(session, startBytes, set),
        ),
        `the consistency signature of ${name} does not match the set`,
      );
    }
    check(
      consistency.length >= terms.threshold,
      `${consistency.length} consistency signatures, fewer than the threshold ${terms.threshold}`,
    );
  }

  // The result the hospital signed.
  const sum = readVector(receipt["sum"], layout, "sum");
  check((await vectorDigest(sum)) === resultDigest, "the sum does not match resultDigest");
  check(
    await verify(
      hospitalKey,
      doneSignature,
      "done",
      doneFields(session, startBytes, set, resultDigest),
    ),
    "the DONE signature does not match the set and resultDigest",
  );
  // Each exact total is at most |set| × its bound, or some input was out of range.
  check(
    totalsWithinBounds(layout, sum, set.length),
    "the sum is larger than the set's inputs allow",
  );
  const statistics = decoded(query, sum, terms.scale, layout);
  check(
    canonicalJson(statistics) === canonicalJson(receipt["result"]),
    "the result does not match the statistics decoded from the sum",
  );

  const unattested = await checkLinear({
    session,
    startBytes,
    set,
    resultDigest,
    sum,
    layout,
    nofn,
    keys,
    roster,
    inputs,
    partnersOf: (name) => bitmapMembers(inputs.find((c) => c.name === name)!.partners, names)!,
    attestations,
    selfSeeds,
    maskSecrets,
  });
  return {
    sum,
    result: statistics,
    query: terms.query,
    session,
    mode: terms.mode,
    threshold: terms.threshold,
    terms,
    participants: names,
    confirmed,
    contributors: set,
    agreed: consistency.map((c) => c.name),
    startHash: hash,
    resultDigest,
    hospital: hospitalName,
    linearCheck: unattested.length === 0 ? "proven" : "not proven",
    unattested,
  };
}

function readAttestations(
  value: unknown,
): { name: string; values: number[]; signature: Uint8Array }[] {
  const list = boundedList(value, 0, MAX_PARTICIPANTS, "attestations").map((item, i) => {
    const where = `attestations[${i}]`;
    const entry = exactKeys(item, ["name", "values", "signature"], where);
    const values = boundedList(entry["values"], 1, MAX_ATTESTED_VALUES, `${where}.values`).map((
      v,
      k,
    ) => wholeNumber(v, `${where}.values[${k}]`, 0, P - 1));
    return {
      name: nameField(entry["name"], `${where}.name`),
      values,
      signature: signatureField(entry["signature"], `${where}.signature`),
    };
  });
  assertSorted(list.map((a) => a.name), "attestations");
  return list;
}

/** A list of {name, [field]: 32 bytes base64}, sorted by name. */
function readSecrets(
  value: unknown,
  what: string,
  field: string,
): { name: string; secret: Uint8Array }[] {
  const list = boundedList(value, 0, MAX_PARTICIPANTS, what).map((item, i) => {
    const entry = exactKeys(item, ["name", field], `${what}[${i}]`);
    return {
      name: nameField(entry["name"], `${what}[${i}].name`),
      secret: bytesField(entry[field], 32, `${what}[${i}].${field}`),
    };
  });
  assertSorted(list.map((s) => s.name), what);
  return list;
}

interface LinearCheckInput {
  session: string;
  startBytes: Uint8Array;
  set: string[];
  resultDigest: string;
  sum: Float64Array;
  layout: Layout;
  nofn: boolean;
  keys: Map<string, CryptoKey>;
  roster: Participant[];
  inputs: { name: string; seedCommit: string }[];
  /** The partner set a member of the set signed in its INPUT. */
  partnersOf(name: string): string[];
  attestations: { name: string; values: number[]; signature: Uint8Array }[];
  selfSeeds: { name: string; secret: Uint8Array }[];
  maskSecrets: { name: string; secret: Uint8Array }[];
}

/**
 * Checks the attestations and the rebuilt secrets, and — when every member
 * of the set attested — that ⟨r, result + masks⟩ ≡ Σ a_m in every segment,
 * where masks = Σ_{m ∈ set} PRG(b_m) + Σ_{m ∈ set, h dropped partner of m}
 * sign(m, h)·PRG(s_mh), exactly what the members added and the hospital
 * removed (docs/protocol.md §9.8, §9.9), so result + masks = Σ y_m for an
 * honest result. Returns the members without an attestation.
 */
async function checkLinear(c: LinearCheckInput): Promise<string[]> {
  const { segments } = c.layout;
  for (const { name, values, signature } of c.attestations) {
    check(c.set.includes(name), `the attestation of ${name} is not from the set`);
    check(
      isAttestedShape(values, segments),
      `the attestation of ${name} is not ${CHALLENGES} values per segment, each below its modulus`,
    );
    check(
      await verify(
        c.keys.get(name)!,
        signature,
        "attest",
        attestFields(c.session, c.startBytes, c.resultDigest, values),
      ),
      `the attestation of ${name} does not match its signature`,
    );
  }
  // The secrets the hospital removed masks with: each checked as it checked them.
  const dropped = c.nofn ? [] : [
    ...new Set(c.set.flatMap((m) => c.partnersOf(m).filter((h) => !c.set.includes(h)))),
  ].sort();
  const seedNames = c.nofn ? [] : c.set;
  check(
    c.selfSeeds.length === seedNames.length &&
      c.selfSeeds.every((b, i) => b.name === seedNames[i]),
    c.nofn
      ? "an n-of-n round has no self seeds"
      : "the self seeds are not one per member of the set",
  );
  check(
    c.maskSecrets.length === dropped.length &&
      c.maskSecrets.every((d, i) => d.name === dropped[i]),
    "the mask secrets are not one per holder that dropped out",
  );
  const sessionBytes = fromHex(c.session);
  for (const { name, secret } of c.selfSeeds) {
    const committed = c.inputs.find((i) => i.name === name)!.seedCommit;
    check(
      (await seedCommitment(c.session, name, secret)) === committed,
      `the self seed of ${name} does not match its commitment`,
    );
  }
  const maskKeys = new Map<string, CryptoKey>();
  for (const { name, secret } of c.maskSecrets) {
    const advertised = c.roster.find((p) => p.name === name)!.maskKey;
    const key = await rebuildMaskKey(secret, advertised).catch(() => undefined);
    check(key !== undefined, `the mask secret of ${name} does not match its mask key`);
    maskKeys.set(name, key);
  }

  const attested = new Set(c.attestations.map((a) => a.name));
  const unattested = c.set.filter((n) => !attested.has(n));
  if (unattested.length > 0) return unattested;

  // Σ y_m = result + what the hospital removed.
  const total = Float64Array.from(c.sum);
  for (const { secret } of c.selfSeeds) await applyMask(total, secret, 1, segments);
  for (const [h, key] of maskKeys) {
    for (const m of c.set) {
      if (!c.partnersOf(m).includes(h)) continue;
      const other = await importPublicKey(c.roster.find((p) => p.name === m)!.maskKey);
      const seed = await pairwiseSeed(key, other, sessionBytes, h, m);
      await applyMask(total, seed, pairSign(m, h), segments);
    }
  }
  const seed = await linearCheckSeed(c.session, c.startBytes, c.set, c.resultDigest);
  const left = await attestedProducts(seed, total, segments);
  left.forEach((value, i) => {
    const modulus = attestedModulus(segments, i);
    let right = 0;
    for (const a of c.attestations) {
      right += a.values[i]!;
      if (right >= modulus) right -= modulus;
    }
    check(
      value === right,
      `the result is not the unmasked sum of the attested inputs (the linear check fails in segment ${
        i % segments.length
      })`,
    );
  });
  return [];
}

// ---------------------------------------------------------------------------
// Reading and writing receipt files.

/**
 * Parses a receipt file's text with the protocol's strict JSON reader
 * (lib/wire/strict_json.ts), refusing any object with the same key twice
 * and nesting deeper than {@linkcode MAX_DEPTH} levels.
 *
 * `JSON.parse` keeps the last of two equal keys while other readers keep the
 * first, so a receipt with `"result"` twice could verify here and show a
 * forged result to another reader: a receipt must mean one thing to every
 * reader. Keys are compared after unescaping, so `"result"` and
 * `"resul\u0074"` are the same key. Numbers are read as JSON numbers (a
 * receipt's statistics are fractional); every number the verifier uses is
 * bounded there. Throws {@linkcode InvalidReceiptError}.
 */
export function parseReceipt(text: string): unknown {
  try {
    return parseStrictJson(text, { numbers: "json", maxDepth: MAX_DEPTH });
  } catch (cause) {
    const detail = (cause as Error).message.replace(/^Invalid message: /, "");
    const twice = /^duplicate key (.*) at offset (\d+)$/.exec(detail);
    if (twice) {
      throw new InvalidReceiptError(
        `the key ${twice[1]} appears twice in one object (at offset ${twice[2]})`,
        { cause },
      );
    }
    throw new InvalidReceiptError(`the file is not strict JSON: ${detail}`, { cause });
  }
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
    await probeWritable(path);
  } catch (cause) {
    throw new FileError(`Cannot write the receipt to ${path}: ${reason(cause)}`, { cause });
  }
}

/**
 * Writes `receipt` to `path`, readable and writable by the owner only (it
 * shows the result and who took part). A new file is created 0600; an
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
