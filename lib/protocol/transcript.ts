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

/** CONFIRM: ("confirm", session, startHash). */
export function confirmFields(session: string, hash: Uint8Array): Bytes[] {
  return [sessionBytes(session), hash];
}

/** INPUT: ("input", session, startHash, length as decimal, digest). */
export function inputFields(
  session: string,
  hash: Uint8Array,
  length: number,
  digest: string,
): Bytes[] {
  return [sessionBytes(session), hash, String(length), fromHex(digest)];
}

/** CONSISTENCY: ("consistency", session, startHash, set joined by ","). */
export function consistencyFields(
  session: string,
  hash: Uint8Array,
  set: readonly string[],
): Bytes[] {
  return [sessionBytes(session), hash, set.join(",")];
}

/** DONE: ("done", session, startHash, set joined by ",", resultDigest). */
export function doneFields(
  session: string,
  hash: Uint8Array,
  set: readonly string[],
  resultDigest: string,
): Bytes[] {
  return [sessionBytes(session), hash, set.join(","), fromHex(resultDigest)];
}
