/**
 * The rules on a round's terms and roster that the hospital and every peer
 * check for themselves: the query fits its dimension, the mode and threshold
 * make sense, and — once the roster's size N is known — no element of the
 * sum can reach p (an exact result), the roster meets the minimum number of
 * contributors, and T > N/2, so two disjoint halves of the roster can never
 * each gather T consistency signatures on different sets.
 *
 * @module
 */

import { dimension, elementBounds, parseQuery } from "../query.ts";
import { P_BIG } from "../field.ts";
import type { Terms } from "../wire/messages.ts";

/** Why `terms` cannot be run, or undefined if they can (roster not yet known). */
export function termsProblem(terms: Terms): string | undefined {
  let query;
  try {
    query = parseQuery(terms.query, terms.scale);
  } catch (error) {
    return (error as Error).message;
  }
  if (dimension(query) !== terms.dimension) {
    return `dimension ${terms.dimension} does not match query ${terms.query}`;
  }
  if (terms.mode === "nofn" && terms.threshold !== 0) return "an n-of-n round has threshold 0";
  if (terms.mode === "threshold" && terms.threshold < 2) return "threshold must be at least 2";
  return undefined;
}

/** Why a roster of `n` participants cannot run `terms`, or undefined if it can. */
export function rosterProblem(terms: Terms, n: number): string | undefined {
  const problem = termsProblem(terms);
  if (problem) return problem;
  if (n < 2) return `${n} participants: a round needs at least 2`;
  if (n < terms.minContributors) {
    return `${n} participants, fewer than the minimum of ${terms.minContributors} contributors`;
  }
  if (terms.mode === "threshold") {
    if (terms.threshold > n) return `threshold ${terms.threshold} exceeds ${n} participants`;
    if (2 * terms.threshold <= n) {
      return `threshold ${terms.threshold} is not above half of ${n} participants`;
    }
  }
  const bounds = elementBounds(parseQuery(terms.query, terms.scale), terms.max, terms.maxRows);
  for (const { label, bound } of bounds) {
    if (BigInt(n) * bound >= P_BIG) {
      return `${n} participants × ${label} is not below p, so the sum could wrap`;
    }
  }
  return undefined;
}
