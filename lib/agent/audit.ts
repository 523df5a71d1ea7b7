/**
 * A peer agent's audit log: one JSON line per round it joined or refused
 * (time, session, variable, query, outcome, contributor set, the result's
 * digest, and the hospital's signed record of the statistics it released),
 * appended to a file readable by its owner only. No value of the site's own
 * data is in it: a site can see what was released from its data, and when.
 *
 * @module
 */

import { FileError } from "../errors.ts";
import type { ReleasedRecord } from "../service/released.ts";

/** One audit entry. */
export interface AuditEntry {
  session: string;
  variable: string | undefined;
  query: string | undefined;
  outcome: "done" | "refused" | "aborted";
  contributors?: readonly string[];
  resultDigest?: string;
  /** Why, in terms of the policy or the protocol (never a value). */
  reason?: string;
  /**
   * What the hospital signed as released from the round: the statistics,
   * query, variable, set and digest (docs/protocol.md §16.1). The only
   * values in the log, and they are the round's published result.
   */
  released?: ReleasedRecord;
  /** Why the hospital's `released` record was not kept (it did not verify). */
  releasedInvalid?: string;
}

/** Appends `entry`, stamped with the time, to the log at `path` (created 0600). */
export async function appendAudit(path: string, entry: AuditEntry): Promise<void> {
  const line = JSON.stringify({ time: new Date().toISOString(), ...entry }) + "\n";
  try {
    await Deno.writeTextFile(path, line, { append: true, create: true, mode: 0o600 });
  } catch (cause) {
    throw new FileError(`Cannot append to audit log ${path}: ${(cause as Error).message}`, {
      cause,
    });
  }
}
