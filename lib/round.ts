/**
 * What the hospital and the peers agree on about a round, in one place.
 *
 * @module
 */

/** How long a connection may take for TLS, authentication and its first message. */
export const HANDSHAKE_TIMEOUT_MS = 10_000;

/** How long a courtesy message (abort, done, refuse) may take to send. */
export const NOTICE_TIMEOUT_MS = 2_000;

/** The default timeout for every wait, in seconds. */
export const DEFAULT_TIMEOUT_SECONDS = 30;

/** A fresh 128-bit session id, as 32 lowercase hex digits. */
export function newSessionId(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(16)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
}

/**
 * The fields a partial sum's signature covers: the session, sender,
 * recipient, the exact participant set and the value. A signed partial sum
 * therefore cannot be moved to another round, party or participant set.
 */
export function aggregateFields(
  session: string,
  from: string,
  to: string,
  participants: readonly string[],
  partial: bigint,
): string[] {
  return ["aggregate", session, from, to, participants.join(","), partial.toString()];
}

/** A short form of a session id for logs. */
export function shortSession(session: string): string {
  return session.slice(0, 8);
}
