/**
 * A data owner's policy, enforced by its own agent whatever the hospital
 * asks: which query kinds a variable answers, the most histogram bins, the
 * most rounds a day, the fewest contributors, that the round covers the
 * variable's declared range, and the answers-by-difference rule. The rule:
 * for each variable and data version (a hash of the numbers alone, at the
 * variable's own scale and in no particular row order: lib/agent/data.ts),
 * the agent answers for ONE contributor set only, whatever the query kind
 * and the round's scale; a repeat over the identical set is fine. (Per kind
 * would not be enough: a sum over {a, b, c} and a mean over {b, c}, which
 * carries the sum over {b, c}, give a's value by difference.)
 *
 * The terms are checked against the declaration before any data is read, so
 * whether the agent joins never depends on its values: a round whose R, row
 * limit or histogram range does not cover the declared range is refused
 * whatever the data holds, and data outside the declaration refuses every
 * round (lib/agent/data.ts). Every refusal reads "refused by policy" to the
 * hospital; the local reason, kept for the operator's log and audit, names
 * the rule, never a value.
 *
 * @module
 */

import { StatedRefusal } from "../protocol/peer/await_invite.ts";
import { parseQuery } from "../query.ts";
import type { Terms } from "../wire/messages.ts";
import type { QueryKind, Variable } from "./config.ts";
import type { AgentState } from "./state.ts";

/** What the hospital is told about any refusal by policy. */
export const REFUSED_BY_POLICY = "refused by policy";

/**
 * A refusal by policy; `message` is what the hospital hears (the same for
 * every rule), `rule` what the operator reads.
 */
export class PolicyRefusal extends StatedRefusal {
  override name = "PolicyRefusal";
  readonly rule: string;
  constructor(rule: string) {
    super(REFUSED_BY_POLICY);
    this.rule = rule;
  }
}

/**
 * Refuses, at INVITE and before any data is read, terms the variable's
 * policy does not allow or that do not cover its declaration; returns the
 * query kind.
 */
export function checkTerms(
  variable: Variable,
  terms: Terms,
  state: AgentState,
  now: number,
): QueryKind {
  const query = parseQuery(terms.query, terms.scale);
  const { policy, name } = variable;
  if (!policy.allow.includes(query.kind)) {
    throw new PolicyRefusal(`${name} does not answer ${query.kind} queries`);
  }
  if (terms.scale < variable.scale) {
    throw new PolicyRefusal(
      `the round's scale ${terms.scale} is below ${name}'s declared scale ${variable.scale}`,
    );
  }
  // The declared largest value at the round's scale: every value the data may
  // hold. A round that does not cover it would be refused or not depending on
  // the data, which would tell the hospital about the values.
  const declared = variable.max * 10n ** BigInt(terms.scale - variable.scale);
  if (query.kind === "histogram") {
    if (query.low > 0n || query.high < declared) {
      throw new PolicyRefusal(
        `the histogram's range does not cover ${name}'s declared range (0 to its max)`,
      );
    }
    // A histogram's bins are not bounded by R, so nothing else keeps the
    // values at the round's scale exact doubles (data.ts atScale): above
    // 2^53 they would round, and a row could land in the wrong bin.
    if (declared > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new PolicyRefusal(
        `${name}'s declared max at the round's scale ${terms.scale} is above 2^53 − 1, so its values could not be binned exactly`,
      );
    }
  } else if (terms.max < declared) {
    throw new PolicyRefusal(`the round's R is below ${name}'s declared max`);
  }
  if (query.kind === "vector") {
    if (query.dimension !== variable.dimension) {
      throw new PolicyRefusal(
        `a vector of ${query.dimension}, not ${name}'s declared dimension ${variable.dimension}`,
      );
    }
  } else if (terms.maxRows < variable.maxRows) {
    throw new PolicyRefusal(
      `the round's row limit ${terms.maxRows} is below ${name}'s declared max_rows ${variable.maxRows}`,
    );
  }
  if (query.kind === "histogram" && query.bins > policy.maxHistogramBins) {
    throw new PolicyRefusal(
      `${query.bins} histogram bins, more than ${variable.name}'s ${policy.maxHistogramBins}`,
    );
  }
  if (terms.minContributors < 1 || terms.participants < policy.minContributors) {
    throw new PolicyRefusal(
      `at most ${terms.participants} contributors, fewer than ${variable.name}'s ${policy.minContributors}`,
    );
  }
  if (
    policy.maxRoundsPerDay !== undefined && state.roundsInLastDay(now) >= policy.maxRoundsPerDay
  ) {
    throw new PolicyRefusal(`already ${policy.maxRoundsPerDay} rounds in the last 24 hours`);
  }
  return query.kind;
}

/**
 * Refuses a contributor set below the variable's floor, or other than the one
 * this variable's data version was answered for. Records nothing: see
 * {@linkcode recordContributors}.
 */
export function checkContributors(
  variable: Variable,
  version: string,
  set: readonly string[],
  state: AgentState,
): void {
  if (set.length < variable.policy.minContributors) {
    throw new PolicyRefusal(
      `${set.length} contributors, fewer than ${variable.name}'s ${variable.policy.minContributors}`,
    );
  }
  const answered = state.answeredSet(variable.name, version);
  const sorted = [...set].sort();
  if (answered === undefined) return;
  if (answered.length !== sorted.length || answered.some((name, i) => name !== sorted[i])) {
    throw new PolicyRefusal(
      `${variable.name} at this data version was answered over another contributor set ` +
        `(${answered.join(", ")}); a different set could reveal a value by difference`,
    );
  }
}

/**
 * Checks `set` again and records it as the one this data version answers
 * for: called when this agent's data is about to leave for that set (n-of-n:
 * the masked input; threshold: the reveal), the point after which it cannot
 * be withdrawn — not earlier, so that a START the core rejects, or a round
 * that stops before then, pins nothing. On disk before the data leaves: a
 * crash cannot forget it.
 */
export async function recordContributors(
  variable: Variable,
  version: string,
  set: readonly string[],
  state: AgentState,
): Promise<void> {
  checkContributors(variable, version, set, state);
  await state.recordAnswered(variable.name, version, [...set].sort());
}
