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
