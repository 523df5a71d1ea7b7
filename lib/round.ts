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

/** SHA-256 of a vector's bytes, as lowercase hex: what a partial sum's signature covers. */
export async function vectorDigest(vector: Float64Array): Promise<string> {
  const bytes = new Uint8Array(vector.buffer, vector.byteOffset, vector.byteLength);
  const hash = new Uint8Array(
    await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>),
  );
  return toHex(hash);
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
