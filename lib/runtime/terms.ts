/**
 * The terms a hospital announces for a round, built from what the operator
 * asked: the query in canonical form, its bounds, the mode, the vector's
 * length from the layout (so a round that cannot be represented exactly is
 * refused here, before anything is sent), and one deadline per phase.
 *
 * @module
 */

import { formatQuery, type Query, vectorLayout } from "../query.ts";
import type { Deadlines, Terms } from "../wire/messages.ts";

/** The default deadline of every phase, in seconds. */
export const DEFAULT_TIMEOUT_SECONDS = 30;

/** Raised for terms that break a privacy floor. */
export class TermsError extends Error {
  override name = "TermsError";
}

/**
 * Refuses threshold configurations that break the privacy floors (every
 * honest peer checks the same on its own; see docs/threat-model.md):
 *
 * - T > N/2: each honest peer signs one survivors set per session, so no two
 *   different sets can both gather T signatures, and the hospital cannot
 *   unmask two sets and learn a value by difference;
 * - T ≤ N: otherwise no round could ever finish;
 * - 2 ≤ K ≤ N: a sum over fewer than two inputs would be one peer's value.
 */
export function assertThresholdFloors(
  peers: number,
  threshold: number,
  minContributors: number,
): void {
  if (!Number.isSafeInteger(threshold) || threshold * 2 <= peers || threshold > peers) {
    throw new TermsError(
      `Cannot run round: the threshold must be more than half the peers and at most their number ` +
        `(for ${peers} peers: ${Math.floor(peers / 2) + 1} to ${peers}), got ${threshold}`,
    );
  }
  if (!Number.isSafeInteger(minContributors) || minContributors < 2 || minContributors > peers) {
    throw new TermsError(
      `Cannot run round: --min-contributors must be from 2 to ${peers}, got ${minContributors}`,
    );
  }
}

/** What {@linkcode roundTerms} builds terms from. */
export interface RoundTermsOptions {
  query: Query;
  scale: number;
  /** The largest input R, scaled. */
  max: bigint;
  maxRows: number;
  /** N: the peers invited; the layout holds for any roster up to N. */
  peers: number;
  /** T for a threshold round; absent for n-of-n. */
  threshold?: number | undefined;
  /** The fewest inputs a threshold round's sum may cover. */
  minContributors: number;
  /** Each phase's deadline. */
  phaseTimeoutMs: number;
}

/** The announced terms; throws the layout's error when the round cannot be represented. */
export function roundTerms(options: RoundTermsOptions): Terms & { deadlines: Deadlines } {
  const { query, scale, max, maxRows, peers, threshold } = options;
  const layout = vectorLayout(query, { max, maxRows, participants: peers });
  const ms = options.phaseTimeoutMs;
  return {
    query: formatQuery(query, scale),
    scale,
    max,
    maxRows,
    mode: threshold === undefined ? "nofn" : "threshold",
    threshold: threshold ?? 0,
    minContributors: threshold === undefined ? 2 : options.minContributors,
    dimension: layout.dimension,
    participants: peers,
    deadlines: {
      joinMs: ms,
      confirmMs: ms,
      shareMs: ms,
      inputMs: ms,
      consistencyMs: ms,
      unmaskMs: ms,
    },
  };
}
