/**
 * A round's result as the hospital reports it: the decoded statistics under
 * `result`, and the round's terms and parties. Shared by the one-shot
 * `hospital` and the serving hospital's answers to `ask`.
 *
 * @module
 */

import { P_BIG } from "../field.ts";
import { decodeResult, type Query, vectorLayout } from "../query.ts";
import type { StarHospitalResult } from "../runtime/hospital.ts";
import type { Terms } from "../wire/messages.ts";

/**
 * The hospital's result as JSON: the decoded statistics under `result` (and,
 * for a `sum` query, `sum` at the top as well), and the round's terms.
 */
export function starReport(
  round: StarHospitalResult,
  terms: Terms,
  query: Query,
): Record<string, unknown> & { result: Record<string, unknown> } {
  const layout = vectorLayout(query, {
    max: terms.max,
    maxRows: terms.maxRows,
    participants: terms.participants,
  });
  const result = decodeResult(query, round.outcome.result, terms.scale, layout);
  return {
    ...(query.kind === "sum" ? { sum: result["sum"] } : {}),
    result,
    query: terms.query,
    session: round.session,
    participants: round.participants,
    contributors: round.outcome.set,
    mode: terms.mode === "nofn" ? "additive" : "threshold",
    threshold: terms.mode === "nofn" ? round.participants.length : terms.threshold,
    scale: terms.scale,
    p: P_BIG.toString(),
    max: terms.max.toString(),
    maxRows: terms.maxRows,
    startToResultMs: Math.round(round.startToResultMs * 10) / 10,
    bytesReceived: round.bytesIn,
    bytesSent: round.bytesOut,
  };
}

/** One statistic for people: arrays shortened when long. */
export function formatStatistic(value: unknown): string {
  if (Array.isArray(value) && value.length > 20) {
    return `[${value.slice(0, 10).join(", ")}, … ${value.length - 10} more]`;
  }
  return Array.isArray(value) ? `[${value.join(", ")}]` : String(value);
}
