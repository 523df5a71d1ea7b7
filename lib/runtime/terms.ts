/**
 * The terms a hospital announces for a round, built from what the operator
 * asked: the query in canonical form, its bounds, the mode, the vector's
 * length from the layout (so a round that cannot be represented exactly is
 * refused here, before anything is sent), and one deadline per phase.
 *
 * @module
 */

import { formatQuery, type Query, vectorLayout } from "../query.ts";
import {
  type Deadlines,
  MAX_NEIGHBORS,
  MAX_PARTICIPANTS,
  MAX_SPARSE_PARTICIPANTS,
  type Terms,
} from "../wire/messages.ts";
import { graphParameters } from "../protocol/graph_parameters.ts";

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

/** The colluder and dropout fractions `--neighbors auto` sizes the graph for. */
export const AUTO_GRAPH_ASSUMPTIONS = { colluders: 0.05, dropouts: 0.05 } as const;

/** A sparse round's degree K and per-neighbourhood threshold T. */
export interface SparseChoice {
  neighbors: number;
  threshold: number;
}

/**
 * The threshold a given `--neighbors K` takes when none is given: K/2 + 2,
 * at most K + 1. The least allowed, K/2 + 1 (2T > K + 1), lets a block of
 * T consecutive positions keep T in every member's window, so a hospital
 * that reports the rest unconfirmed learns the sum of T honest peers
 * whatever their floors; from K/2 + 2 on, every member needs confirmed
 * neighbours on both sides, and a group that finishes must reach around
 * the ring of the n its members signed (docs/threat-model.md, "Sparse
 * rounds"). `auto` picks T above it from 20 peers on (K = 6, T = 5 at
 * n = 20; K = 18, T = 13 at n = 100), and K = 2, T = 2 from 4 to 19.
 */
export function defaultSparseThreshold(neighbors: number): number {
  return Math.min(neighbors / 2 + 2, neighbors + 1);
}

/**
 * The pairing graph `--neighbors K|auto` asks for (docs/protocol.md §18),
 * or undefined for the complete graph (no flag). `auto` takes K and T from
 * lib/protocol/graph_parameters.ts for `peers` and the assumed fractions
 * (default 5 % colluders, 5 % dropouts); a given K takes `threshold` or, if
 * none, {@linkcode defaultSparseThreshold} (for K = 2 that is 3: every
 * neighbour must confirm). A `threshold` given with
 * either must meet 2T > K + 1 and T ≤ K + 1, the rule every peer checks.
 * Throws TermsError naming the flag.
 */
export function sparseGraphOption(
  spec: string | undefined,
  options: {
    peers: number;
    threshold?: number | undefined;
    colluders?: number;
    dropouts?: number;
  },
): SparseChoice | undefined {
  if (spec === undefined) return undefined;
  const { peers } = options;
  if (peers > MAX_SPARSE_PARTICIPANTS) {
    throw new TermsError(
      `Cannot run round: at most ${MAX_SPARSE_PARTICIPANTS} peers, got ${peers}`,
    );
  }
  let neighbors: number;
  let threshold: number;
  if (spec === "auto") {
    let found: SparseChoice;
    try {
      found = graphParameters(peers, {
        colluders: options.colluders ?? AUTO_GRAPH_ASSUMPTIONS.colluders,
        dropouts: options.dropouts ?? AUTO_GRAPH_ASSUMPTIONS.dropouts,
      });
    } catch (cause) {
      throw new TermsError(`Cannot run round: --neighbors auto: ${(cause as Error).message}`, {
        cause,
      });
    }
    neighbors = found.neighbors;
    threshold = options.threshold ?? found.threshold;
  } else {
    if (!/^[1-9][0-9]{0,3}$/.test(spec)) {
      throw new TermsError(`Cannot run round: --neighbors must be an even number or auto`);
    }
    neighbors = Number(spec);
    threshold = options.threshold ?? defaultSparseThreshold(neighbors);
  }
  if (neighbors % 2 !== 0 || neighbors < 2 || neighbors > MAX_NEIGHBORS) {
    throw new TermsError(
      `Cannot run round: --neighbors must be even, from 2 to ${MAX_NEIGHBORS}, got ${neighbors}`,
    );
  }
  if (neighbors + 1 > peers) {
    throw new TermsError(
      `Cannot run round: --neighbors ${neighbors} needs at least ${neighbors + 1} peers; ` +
        `use the complete graph for ${peers}`,
    );
  }
  if (
    !Number.isSafeInteger(threshold) || 2 * threshold <= neighbors + 1 || threshold > neighbors + 1
  ) {
    throw new TermsError(
      `Cannot run round: with --neighbors ${neighbors} the threshold must be more than half a ` +
        `neighbourhood and at most its size (${Math.floor((neighbors + 1) / 2) + 1} to ` +
        `${neighbors + 1}), got ${threshold}`,
    );
  }
  return { neighbors, threshold };
}

/** The most peers a round may have: the complete graph's cap, or the sparse one. */
export function peerCap(sparse: boolean): number {
  return sparse ? MAX_SPARSE_PARTICIPANTS : MAX_PARTICIPANTS;
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
  /** K of a sparse round ({@linkcode sparseGraphOption}); absent: the complete graph. */
  neighbors?: number | undefined;
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
    ...(options.neighbors !== undefined ? { neighbors: options.neighbors } : {}),
    deadlines: uniformDeadlines(ms),
  };
}

/** The same deadline for every phase (docs/protocol.md §12: a peer MUST bound every wait). */
export function uniformDeadlines(ms: number): Deadlines {
  return {
    joinMs: ms,
    confirmMs: ms,
    shareMs: ms,
    inputMs: ms,
    consistencyMs: ms,
    unmaskMs: ms,
  };
}
