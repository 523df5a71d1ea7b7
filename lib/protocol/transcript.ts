/**
 * The exact fields behind every v2 signature and the START hash, one
 * function per statement, so signer and verifier cannot disagree on bytes.
 * Session fields are the 16 raw bytes, keys the 65-byte points, certificates
 * their DER, integers decimal ASCII, sets the names joined by ",", hashes and
 * digests their raw 32 bytes (see lib/crypto/signing.ts for the framing).
 *
 * @module
 */

import * as x509 from "@peculiar/x509";
import type { Bytes } from "../crypto/bytes.ts";
import { fromHex } from "../crypto/bytes.ts";
import { toHex } from "../encoding.ts";
import { signingInput } from "../crypto/signing.ts";
import { type Participant, type Terms, termsBytes } from "../wire/messages.ts";

/** The 16 raw bytes of a session id (32 lowercase hex digits). */
export function sessionBytes(session: string): Uint8Array {
  return fromHex(session);
}

/** INVITE: ("invite", session, terms bytes). */
export function inviteFields(session: string, terms: Terms): Bytes[] {
  return [sessionBytes(session), termsBytes(terms)];
}

/** JOIN: ("join", session, name, sealKey, maskKey). */
export function joinFields(
  session: string,
  name: string,
  sealKey: Uint8Array,
  maskKey: Uint8Array,
): Bytes[] {
  return [sessionBytes(session), name, sealKey, maskKey];
}

/** The DER bytes of a PEM certificate (as hashed into the START transcript). */
export function certificateDer(pem: string): Uint8Array {
  return new Uint8Array(x509.PemConverter.decodeFirst(pem));
}

/**
 * startHash = SHA-256(signing input "start" with fields session, terms bytes,
 * then per participant in roster order: name, cert DER, sealKey, maskKey,
 * join signature).
 */
export async function startHash(
  session: string,
  terms: Terms,
  participants: readonly Participant[],
): Promise<Uint8Array> {
  const fields: Bytes[] = [sessionBytes(session), termsBytes(terms)];
  for (const p of participants) {
    fields.push(p.name, certificateDer(p.cert), p.sealKey, p.maskKey, p.signature);
  }
  return new Uint8Array(await crypto.subtle.digest("SHA-256", signingInput("start", fields)));
}

/** Where a sparse round's START placed the signer of a CONFIRM (docs/protocol.md §18.3). */
export interface Place {
  /** The roster's size n as that START gives it. */
  size: number;
  /** The signer's position in the permuted roster, 0 to n − 1. */
  position: number;
}

/**
 * CONFIRM: ("confirm", session, startHash); in a sparse round also n and
 * the signer's position, as decimal integers. A sparse peer sees only its
 * window, so without these a neighbour's signature would say only "I saw
 * this hash": a hospital could show the two of them different sizes, or
 * place them where the other's START does not, and each would still count
 * the other (review 9: nine peers with floors of 30 each then revealed in a
 * "round of 30"). Signed, a peer counts a neighbour only if that neighbour
 * was told the same n and the position this peer's START gives it.
 */
export function confirmFields(session: string, hash: Uint8Array, place?: Place): Bytes[] {
  const fields: Bytes[] = [sessionBytes(session), hash];
  if (place) fields.push(String(place.size), String(place.position));
  return fields;
}

/** What a peer's INPUT signature covers besides the session and START hash. */
export interface InputStatement {
  /** The masked vector's length (the dimension). */
  length: number;
  /** vectorDigest of the masked vector, lowercase hex. */
  digest: string;
  /**
   * The commitment to the peer's self seed ({@linkcode seedCommitment}),
   * lowercase hex; {@linkcode NO_SEED_COMMIT} in n-of-n rounds, which have
   * no self seed.
   */
  seedCommit: string;
  /**
   * The peers it masked with, itself included: a bitmap over START roster
   * indices, lowercase hex (lib/protocol/partners.ts).
   */
  partners: string;
}

/**
 * INPUT: ("input", session, startHash, length as decimal, digest,
 * seedCommit, partners bitmap).
 */
export function inputFields(
  session: string,
  hash: Uint8Array,
  statement: InputStatement,
): Bytes[] {
  return [
    sessionBytes(session),
    hash,
    String(statement.length),
    fromHex(statement.digest),
    fromHex(statement.seedCommit),
    fromHex(statement.partners),
  ];
}

/**
 * The seedCommit of a round without self seeds (n-of-n): 32 zero bytes.
 * A commitment of a real seed is a SHA-256 output and is never this value
 * except with probability 2^-256.
 */
export const NO_SEED_COMMIT = "0".repeat(64);

/**
 * A peer's commitment to its self seed b, lowercase hex: SHA-256 of the
 * signing input ("self-seed", session, name, b). The seed is 32 fresh
 * random bytes, so the hash hides it; SHA-256 binds it, so the hospital can
 * tell a seed rebuilt from altered shares from the one the peer masked with
 * — with exactly T revealers, no extra share can tell it.
 */
export async function seedCommitment(
  session: string,
  name: string,
  seed: Uint8Array,
): Promise<string> {
  const input = signingInput("self-seed", [sessionBytes(session), name, seed]);
  return toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", input)));
}

/** CONSISTENCY: ("consistency", session, startHash, set joined by ","). */
export function consistencyFields(
  session: string,
  hash: Uint8Array,
  set: readonly string[],
): Bytes[] {
  return [sessionBytes(session), hash, set.join(",")];
}

/**
 * CONSISTENCY in a sparse round (docs/protocol.md §18): ("consistency",
 * session, startHash, view) where view is the signer's window bitmap of the
 * survivors in its window (lib/protocol/graph.ts), its raw bytes.
 */
export function viewFields(session: string, hash: Uint8Array, view: string): Bytes[] {
  return [sessionBytes(session), hash, fromHex(view)];
}

/**
 * The set field of DONE and the linear-check seed: the names joined by ","
 * (complete graph), or in a sparse round the 32-byte setDigest
 * (lib/protocol/graph.ts), since no peer sees the whole set.
 */
export type SetField = readonly string[] | Uint8Array;

function setBytes(set: SetField): Bytes {
  return set instanceof Uint8Array ? set : set.join(",");
}

/** DONE: ("done", session, startHash, set joined by "," or setDigest, resultDigest). */
export function doneFields(
  session: string,
  hash: Uint8Array,
  set: SetField,
  resultDigest: string,
): Bytes[] {
  return [sessionBytes(session), hash, setBytes(set), fromHex(resultDigest)];
}

/**
 * The seed of the linear-check challenge r = PRG(seed) (lib/crypto/
 * linear_check.ts): SHA-256 of the signing input ("linear-check", session,
 * startHash, set joined by ",", resultDigest) — DONE's fields, so r is
 * fixed only once the hospital has signed its result for this set. 32 bytes.
 */
export async function linearCheckSeed(
  session: string,
  hash: Uint8Array,
  set: SetField,
  resultDigest: string,
): Promise<Uint8Array> {
  const input = signingInput("linear-check", doneFields(session, hash, set, resultDigest));
  return new Uint8Array(await crypto.subtle.digest("SHA-256", input));
}

/**
 * ATTEST: ("attest", session, startHash, resultDigest, then each value as
 * decimal, one field per segment of the layout in vector order).
 */
export function attestFields(
  session: string,
  hash: Uint8Array,
  resultDigest: string,
  values: readonly number[],
): Bytes[] {
  return [sessionBytes(session), hash, fromHex(resultDigest), ...values.map(String)];
}
