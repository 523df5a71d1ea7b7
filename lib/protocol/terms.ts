/**
 * The rules on a round's terms and roster that the hospital and every peer
 * check for themselves. From the terms alone: the query parses, its vector
 * layout for N = `participants` can be represented (lib/query.ts
 * `vectorLayout`: every total summed over N peers fits its residues, the
 * vector is not too long), `dimension` is that layout's, and the mode,
 * threshold and minimum contributors can be met by N peers. Once the START
 * roster's size n is known: n ≤ N (the layout covers sums of at most N
 * inputs, so a layout valid for N is valid for any smaller roster, and a
 * larger one could wrap), n meets the minimum number of contributors, and
 * T > n/2, so two disjoint halves of the roster can never each gather T
 * consistency signatures on different sets.
 *
 * Nothing about the layout is sent: each party recomputes it from the
 * signed terms, so a hospital cannot lay a round out with fewer residues
 * than its totals need.
 *
 * @module
 */

import { formatQuery, type Layout, parseQuery, type Query, vectorLayout } from "../query.ts";
import { MAX_PARTICIPANTS, type Terms } from "../wire/messages.ts";

/** The query and layout valid terms give. */
export interface RoundShape {
  query: Query;
  layout: Layout;
}

/**
 * The query and vector layout of `terms`, or why the terms cannot be run
 * (roster not yet known).
 */
export function shapeOf(terms: Terms): RoundShape | string {
  let query: Query;
  let layout: Layout;
  try {
    query = parseQuery(terms.query, terms.scale);
    layout = vectorLayout(query, {
      max: terms.max,
      maxRows: terms.maxRows,
      participants: terms.participants,
    });
  } catch (error) {
    return (error as Error).message;
  }
  if (formatQuery(query, terms.scale) !== terms.query) {
    // One spelling per query: two spellings would be two different signed terms for one round.
    return `query ${JSON.stringify(terms.query.slice(0, 40))} is not in canonical form`;
  }
  if (layout.dimension !== terms.dimension) {
    return `dimension ${terms.dimension} does not match the layout of ${terms.query} ` +
      `for ${terms.participants} participants (${layout.dimension} elements)`;
  }
  if (terms.mode === "nofn" && terms.threshold !== 0) return "an n-of-n round has threshold 0";
  if (terms.mode === "threshold" && terms.threshold < 2) return "threshold must be at least 2";
  if (terms.threshold > terms.participants) {
    return `threshold ${terms.threshold} exceeds the ${terms.participants} participants`;
  }
  if (terms.minContributors > terms.participants) {
    return `the minimum of ${terms.minContributors} contributors exceeds the ` +
      `${terms.participants} participants`;
  }
  const graphProblem = sparseProblem(terms);
  if (graphProblem) return graphProblem;
  return { query, layout };
}

/**
 * Why the pairing graph of `terms` cannot be run. Complete graph (no
 * `neighbors`): at most MAX_PARTICIPANTS, whose START fits one frame.
 * Sparse (docs/protocol.md §18): a threshold round, K even, and per
 * neighbourhood of K + 1 what T > n/2 is for the complete graph: 2T > K + 1,
 * so two disjoint halves of a neighbourhood cannot each gather T.
 */
function sparseProblem(terms: Terms): string | undefined {
  const k = terms.neighbors;
  if (k === undefined) {
    if (terms.participants > MAX_PARTICIPANTS) {
      return `${terms.participants} participants: the complete graph allows at most ` +
        `${MAX_PARTICIPANTS} (more need sparse pairing, neighbors)`;
    }
    return undefined;
  }
  if (terms.mode !== "threshold") return "sparse pairing (neighbors) needs a threshold round";
  if (k % 2 !== 0) return `neighbors ${k} is odd: the Harary graph needs an even degree`;
  if (k + 1 > terms.participants) {
    return `neighbors ${k} needs at least ${k + 1} participants, not ${terms.participants}`;
  }
  if (terms.threshold > k + 1) {
    return `threshold ${terms.threshold} exceeds a neighbourhood of ${k + 1}`;
  }
  if (2 * terms.threshold <= k + 1) {
    return `threshold ${terms.threshold} is not above half of a neighbourhood of ${k + 1}`;
  }
  return undefined;
}

/** Why `terms` cannot be run, or undefined if they can (roster not yet known). */
export function termsProblem(terms: Terms): string | undefined {
  const shape = shapeOf(terms);
  return typeof shape === "string" ? shape : undefined;
}

/** Why a roster of `n` participants cannot run `terms`, or undefined if it can. */
export function rosterProblem(terms: Terms, n: number): string | undefined {
  const problem = termsProblem(terms);
  if (problem) return problem;
  if (n < 2) return `${n} participants: a round needs at least 2`;
  if (n > terms.participants) {
    return `${n} participants, more than the ${terms.participants} the round is laid out for`;
  }
  if (n < terms.minContributors) {
    return `${n} participants, fewer than the minimum of ${terms.minContributors} contributors`;
  }
  if (terms.neighbors !== undefined) {
    // Per neighbourhood, checked with the terms; the ring needs K + 1 distinct positions.
    if (n < terms.neighbors + 1) {
      return `${n} participants, fewer than a neighbourhood of ${terms.neighbors + 1}`;
    }
    return undefined;
  }
  if (terms.mode === "threshold") {
    if (terms.threshold > n) return `threshold ${terms.threshold} exceeds ${n} participants`;
    if (2 * terms.threshold <= n) {
      return `threshold ${terms.threshold} is not above half of ${n} participants`;
    }
  }
  return undefined;
}
