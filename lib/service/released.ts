/**
 * The released-result record of a served round (docs/protocol.md §16.1):
 * after the attest phase the serving hospital signs what it released — the
 * decoded statistics, the query, the variable, the contributor set and the
 * result digest — and sends it to every agent in the set, which checks it
 * against what it saw in the round and keeps it in its audit log. A site can
 * then show what was computed from its data with the hospital's own
 * signature, not just the digest DONE gave it.
 *
 * The signing input follows lib/crypto/signing.ts: lp("sumshare/2 released")
 * then the fields, each lp-framed, so it never verifies as any other
 * statement. (The purpose belongs in that module's `Purpose` list; until the
 * core adds it there it is spelled here, byte for byte the same scheme.)
 *
 * @module
 */

import { fromHex, lp } from "../crypto/bytes.ts";
import { toBase64, toHex } from "../encoding.ts";
import { sessionBytes } from "../protocol/transcript.ts";
import { MAX_RELEASED_CHARS, type MessageOf } from "../wire/messages.ts";
import { parseStrictJson } from "../wire/strict_json.ts";

const ECDSA = { name: "ECDSA", hash: "SHA-256" } as const;

/** The domain of the signature: no other v2 statement starts with these bytes. */
const PURPOSE = "sumshare/2 released";

/** What the hospital says it released from one round. */
export interface Release {
  session: string;
  /** SHA-256 of the round's START transcript (32 bytes); signed, not sent: both sides know it. */
  startHash: Uint8Array;
  variable: string;
  query: string;
  /** Whose inputs the result sums, sorted. */
  set: readonly string[];
  resultDigest: string;
  /**
   * The decoded statistics as JSON text; undefined when that text is longer
   * than {@linkcode MAX_RELEASED_CHARS} (a very long vector), where the
   * result digest alone stands for the values.
   */
  statistics: string | undefined;
}

/**
 * The bytes the signature covers: lp(purpose) ‖ lp(session, 16 bytes) ‖
 * lp(startHash) ‖ lp(variable) ‖ lp(query) ‖ lp(set joined by ",") ‖
 * lp(resultDigest, 32 bytes) ‖ lp(statistics, or empty when absent: JSON
 * text is never empty).
 */
export function releasedSigningInput(release: Release): Uint8Array<ArrayBuffer> {
  return lp(
    PURPOSE,
    sessionBytes(release.session),
    release.startHash,
    release.variable,
    release.query,
    release.set.join(","),
    fromHex(release.resultDigest),
    release.statistics ?? "",
  );
}

/** The `released` message for `release`, signed with the hospital's key. */
export async function signReleased(
  release: Release,
  key: CryptoKey,
): Promise<MessageOf<"released">> {
  const signature = new Uint8Array(
    await crypto.subtle.sign(ECDSA, key, releasedSigningInput(release)),
  );
  return {
    type: "released",
    session: release.session,
    variable: release.variable,
    query: release.query,
    set: [...release.set],
    resultDigest: release.resultDigest,
    ...(release.statistics === undefined ? {} : { statistics: release.statistics }),
    signature,
  };
}

/** JSON text of `statistics`, or undefined when it is too long for a `released` message. */
export function statisticsText(statistics: Record<string, unknown>): string | undefined {
  const text = JSON.stringify(statistics);
  return text.length <= MAX_RELEASED_CHARS ? text : undefined;
}

/** A `released` message that does not match the round, or whose signature does not verify. */
export class ReleasedError extends Error {
  override name = "ReleasedError";
}

/** What an agent saw of its round, against which a `released` is checked. */
export interface SeenRound {
  session: string;
  startHash: Uint8Array;
  variable: string;
  query: string;
  set: readonly string[];
  resultDigest: string;
  /** The hospital's key, from the certificate checked at INVITE. */
  hospitalKey: CryptoKey;
}

/** The released record as an agent's audit log keeps it. */
export interface ReleasedRecord {
  /** The round's START hash (hex), which the signature covers but the message does not carry. */
  startHash: string;
  variable: string;
  query: string;
  set: string[];
  resultDigest: string;
  /** The statistics; absent when the hospital sent only the digest (a very long vector). */
  statistics?: unknown;
  /** The hospital's signature (base64), so the site can show the record to others. */
  signature: string;
}

/**
 * Checks `message` against the round as this agent saw it and the
 * hospital's signature; returns the record to keep, or throws
 * {@linkcode ReleasedError} saying which check failed.
 */
export async function verifyReleased(
  message: MessageOf<"released">,
  seen: SeenRound,
): Promise<ReleasedRecord> {
  if (message.session !== seen.session) {
    throw new ReleasedError("Invalid released result: it is for another session");
  }
  if (message.variable !== seen.variable || message.query !== seen.query) {
    throw new ReleasedError("Invalid released result: not the variable and query of the round");
  }
  if (
    message.set.length !== seen.set.length || message.set.some((name, i) => name !== seen.set[i])
  ) {
    throw new ReleasedError("Invalid released result: not the contributor set DONE named");
  }
  if (message.resultDigest !== seen.resultDigest) {
    throw new ReleasedError("Invalid released result: not the result digest DONE signed");
  }
  const input = releasedSigningInput({
    session: message.session,
    startHash: seen.startHash,
    variable: message.variable,
    query: message.query,
    set: message.set,
    resultDigest: message.resultDigest,
    statistics: message.statistics,
  });
  let valid = false;
  try {
    valid = await crypto.subtle.verify(
      ECDSA,
      seen.hospitalKey,
      message.signature as Uint8Array<ArrayBuffer>,
      input,
    );
  } catch {
    valid = false;
  }
  if (!valid) {
    throw new ReleasedError("Invalid released result: the hospital's signature does not verify");
  }
  let statistics: unknown;
  if (message.statistics !== undefined) {
    try {
      statistics = parseStrictJson(message.statistics, { numbers: "json" });
    } catch (cause) {
      throw new ReleasedError("Invalid released result: its statistics are not JSON", { cause });
    }
    if (typeof statistics !== "object" || statistics === null || Array.isArray(statistics)) {
      throw new ReleasedError("Invalid released result: its statistics are not a JSON object");
    }
  }
  return {
    startHash: toHex(seen.startHash),
    variable: message.variable,
    query: message.query,
    set: [...message.set],
    resultDigest: message.resultDigest,
    ...(statistics === undefined ? {} : { statistics }),
    signature: toBase64(message.signature),
  };
}
