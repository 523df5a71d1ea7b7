/**
 * What the hospital and the peers agree on about a round, in one place.
 *
 * @module
 */

import { randomHex, toHex } from "./encoding.ts";

/** The longest a connection may take for TLS, authentication and its first message. */
export const HANDSHAKE_TIMEOUT_MS = 10_000;

/** The handshake deadline for a party whose waits are `timeoutMs`: never longer than those. */
export function handshakeTimeoutMs(timeoutMs: number): number {
  return Math.min(HANDSHAKE_TIMEOUT_MS, timeoutMs);
}

/** How long a courtesy message (abort, done, refuse) may take to send. */
export const NOTICE_TIMEOUT_MS = 2_000;

/** The default timeout for every wait, in seconds. */
export const DEFAULT_TIMEOUT_SECONDS = 30;

/** A fresh 128-bit session id, as 32 lowercase hex digits. */
export function newSessionId(): string {
  return randomHex(16);
}

/** How the peers share: n-of-n additive, or Shamir with threshold T. */
export type Mode = "additive" | "threshold";

/** What a partial sum's signature is bound to. */
export interface RoundTerms {
  session: string;
  mode: Mode;
  threshold: number;
  /** The query spec and scale: what the vector's elements mean. */
  query: string;
  scale: number;
  /** Every participant, sorted: position i has evaluation point i + 1. */
  participants: readonly string[];
  /** Whose inputs the sum covers. */
  contributors: readonly string[];
}

/**
 * The fields a partial sum's signature covers: the round's terms, sender,
 * recipient, and the partial sum itself as its length and SHA-256 digest. A
 * signed partial sum therefore cannot be moved to another round, party, query,
 * mode or contributor set.
 */
export function aggregateFields(
  terms: RoundTerms,
  from: string,
  to: string,
  length: number,
  digest: string,
): string[] {
  return [
    "aggregate",
    terms.session,
    terms.mode,
    String(terms.threshold),
    terms.query,
    String(terms.scale),
    terms.participants.join(","),
    terms.contributors.join(","),
    from,
    to,
    String(length),
    digest,
  ];
}

/**
 * Elements hashed per Web Crypto call (512 KiB). Web Crypto copies what it
 * hashes, so hashing a whole 2^20-element vector at once would briefly cost
 * a second vector of memory.
 */
const DIGEST_PIECE_ELEMENTS = 64 * 1024;

/**
 * What a partial sum's signature covers, as lowercase hex: SHA-256 over the
 * concatenated SHA-256s of the vector's bytes (little-endian float64) in
 * pieces of 65 536 elements, the last piece shorter. A list of hashes binds
 * the vector as firmly as one hash over it, and needs no whole-vector copy.
 */
export async function vectorDigest(vector: Float64Array): Promise<string> {
  const pieces = Math.ceil(vector.length / DIGEST_PIECE_ELEMENTS);
  const hashes = new Uint8Array(32 * pieces);
  for (let i = 0; i < pieces; i++) {
    const piece = vector.subarray(i * DIGEST_PIECE_ELEMENTS, (i + 1) * DIGEST_PIECE_ELEMENTS);
    const bytes = new Uint8Array(piece.buffer, piece.byteOffset, piece.byteLength);
    const hash = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
    hashes.set(new Uint8Array(hash), 32 * i);
  }
  return toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", hashes)));
}

/** The fields the hospital's FINALIZE signature covers. */
export function finalizeFields(
  session: string,
  hospital: string,
  contributors: readonly string[],
): string[] {
  return ["finalize", session, hospital, contributors.join(",")];
}

/**
 * In threshold mode a round's deadline is split: peers exchange shares for
 * the first 40 %, the hospital collects reports of who holds what until 60 %,
 * and partial sums until the end.
 */
export const SHARING_FRACTION = 0.4;
/** See {@linkcode SHARING_FRACTION}. */
export const HOLDING_FRACTION = 0.6;

/** A short form of a session id for logs. */
export function shortSession(session: string): string {
  return session.slice(0, 8);
}
