/**
 * The error types every part of sumshare raises for expected failures.
 * Anything else reaching the CLI is a bug and is shown with its stack.
 *
 * @module
 */

/** A peer sent bytes that are not a valid sumshare frame or message. */
export class ProtocolError extends Error {
  override name = "ProtocolError";
}

/** A party could not prove who it is, or proved it is someone else. */
export class AuthError extends Error {
  override name = "AuthError";
}

/** The other side closed the connection (not a protocol violation). */
export class ConnectionClosedError extends Error {
  override name = "ConnectionClosedError";
}

/** The round was aborted; `message` says why. */
export class RoundAbortedError extends Error {
  override name = "RoundAbortedError";
}

/** A wait ran past its deadline. */
export class TimeoutError extends Error {
  override name = "TimeoutError";
}

/** The user asked for something that cannot work (exit code 2). */
export class UsageError extends Error {
  override name = "UsageError";
}

/**
 * A file named on the command line could not be read or written. Its message
 * names the file and the system's reason, so {@linkcode describeError} does
 * not repeat the cause after it.
 */
export class FileError extends Error {
  override name = "FileError";
}

/**
 * A party could not listen on its address. The message already says in words
 * what the system error means ("address already in use"), so
 * {@linkcode describeError} does not repeat the cause after it.
 */
export class ListenError extends Error {
  override name = "ListenError";
}

const EXPECTED_NAMES = new Set([
  "ProtocolError",
  "AuthError",
  "RoundAbortedError",
  "TimeoutError",
  "UsageError",
  "RangeCheckError",
  "InvalidNameError",
  "PkiError",
  "ConnectionClosedError",
  "InconsistentSharesError",
  "InvalidReceiptError",
  "InputRejectedError",
  "QueryError",
  "InputError",
  "DecimalError",
  "FileError",
  "ListenError",
  "PartyExistsError",
  "TransportError",
  "FrameError",
  "TermsError",
]);

/**
 * Whether `error` is an expected failure (bad input, a refused or lost
 * connection, an abort) to report in one line, rather than a bug to report
 * with its stack.
 */
export function isExpectedError(error: unknown): error is Error {
  if (!(error instanceof Error)) return false;
  return EXPECTED_NAMES.has(error.name) ||
    Object.values(Deno.errors).some((type) => error instanceof type);
}

/**
 * A one-line description of `error` and its causes, for logs: control
 * characters escaped (a peer's refusal reason is its own text) and the whole
 * cut to 300 characters.
 */
export function describeError(error: unknown): string {
  const parts: string[] = [];
  let e: unknown = error;
  for (let depth = 0; e !== undefined && depth < 4; depth++) {
    parts.push(e instanceof Error ? e.message : String(e));
    e = e instanceof Error && !summarizesCause(e) ? e.cause : undefined;
  }
  const safe = escapeControls(parts.filter((p, i) => p !== "" && p !== parts[i - 1]).join(": "));
  return safe.length > 300 ? `${safe.slice(0, 300)}…` : safe;
}

/**
 * `text` with every control character (C0, DEL, C1, and the two Unicode
 * line separators) written as `\uXXXX`: text another party chose (a peer's
 * refusal, the hospital's abort reason) can then neither start a forged log
 * line nor send a terminal escape sequence.
 */
export function escapeControls(text: string): string {
  return text.replace(
    // deno-lint-ignore no-control-regex
    /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/**
 * Errors whose message already says what their cause means: the raw text of
 * the cause (a system error code, a TLS library's wording) would only repeat
 * it less clearly.
 */
function summarizesCause(error: Error): boolean {
  return error instanceof ListenError || error instanceof FileError ||
    error.name === "TransportError";
}
