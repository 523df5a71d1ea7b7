/**
 * A data owner's policy, enforced by its own agent whatever the hospital
 * asks: which query kinds a variable answers, the most histogram bins, the
 * most rounds a day, the fewest contributors, and the answers-by-difference
 * rule. The rule: for each variable and data version (a hash of the numbers
 * used), the agent answers for ONE contributor set only, whatever the query
 * kind; a repeat over the identical set is fine. (Per kind would not be
 * enough: a sum over {a, b, c} and a mean over {b, c}, which carries the
 * sum over {b, c}, give a's value by difference.) Every refusal reads
 * "refused by policy" to the hospital; the local reason, kept for the
 * operator's log and audit, names the rule, never a value.
 *
 * @module
 */

import { parseQuery } from "../query.ts";
import type { Terms } from "../wire/messages.ts";
import type { QueryKind, Variable } from "./config.ts";
import type { AgentState } from "./state.ts";

/** What the hospital is told about any refusal by policy. */
export const REFUSED_BY_POLICY = "refused by policy";

/** A refusal by policy; `message` is what the hospital hears, `rule` what the operator reads. */
export class PolicyRefusal extends Error {
  override name = "PolicyRefusal";
  readonly rule: string;
  constructor(rule: string) {
    super(REFUSED_BY_POLICY);
    this.rule = rule;
  }
}

/** Refuses, at INVITE, terms the variable's policy does not allow; returns the query kind. */
export function checkTerms(
  variable: Variable,
  terms: Terms,
  state: AgentState,
  now: number,
): QueryKind {
  const query = parseQuery(terms.query, terms.scale);
  const { policy } = variable;
  if (!policy.allow.includes(query.kind)) {
    throw new PolicyRefusal(`${variable.name} does not answer ${query.kind} queries`);
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
 * this variable's data version was answered for; records the first.
 */
export async function checkContributors(
  variable: Variable,
  version: string,
  set: readonly string[],
  state: AgentState,
): Promise<void> {
  if (set.length < variable.policy.minContributors) {
    throw new PolicyRefusal(
      `${set.length} contributors, fewer than ${variable.name}'s ${variable.policy.minContributors}`,
    );
  }
  const answered = state.answeredSet(variable.name, version);
  const sorted = [...set].sort();
  if (answered === undefined) {
    // On disk before anything of this round leaves: a crash cannot forget it.
    await state.recordAnswered(variable.name, version, sorted);
    return;
  }
  if (answered.length !== sorted.length || answered.some((name, i) => name !== sorted[i])) {
    throw new PolicyRefusal(
      `${variable.name} at this data version was answered over another contributor set ` +
        `(${answered.join(", ")}); a different set could reveal a value by difference`,
    );
  }
}
