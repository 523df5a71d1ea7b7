/**
 * A peer agent's audit log: one JSON line per round it joined or refused
 * (time, session, variable, query, outcome, contributor set, the result's
 * digest), appended to a file readable by its owner only. Nothing in it is
 * a data value: a site can see what was released from its data, and when.
 *
 * @module
 */

import { FileError } from "../errors.ts";

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
