/**
 * Who drops out of a simulated round, and when: chosen from the seed, so a
 * run can be replayed. A peer "drops at a phase" by vanishing just as it is
 * about to send that phase's answer: its connection is cut before the
 * message leaves (see link.ts), as when a phone loses its network.
 *
 * @module
 */

import { streamFor } from "./data.ts";

/** The phases a peer answers in, in order, with the message type its answer has. */
export const PHASE_MESSAGES = {
  advertise: "join",
  confirm: "confirm",
  share: "sealed",
  input: "input",
  consistency: "consistency",
  unmask: "reveal",
} as const;

/** A phase a peer can drop out at. */
export type Phase = keyof typeof PHASE_MESSAGES;

/** Every phase, in the order of a round. */
export const PHASES = Object.keys(PHASE_MESSAGES) as Phase[];

/** The phases of a round of this mode (n-of-n has no share, consistency or unmasking). */
export function phasesOf(threshold: boolean): Phase[] {
  return threshold ? PHASES : ["advertise", "confirm", "input"];
}

/** Whether `text` names a phase. */
export function isPhase(text: string): text is Phase {
  return Object.hasOwn(PHASE_MESSAGES, text);
}

/**
 * Whether a peer that vanishes at `phase` still counts in the sum: from the
 * consistency phase on, the hospital holds its masked input, and the survivors
 * set it announced includes it.
 */
export function stillContributes(phase: Phase): boolean {
  return phase === "consistency" || phase === "unmask";
}

const DROPOUT = 2;

/** How many of `peers` drop out for a fraction `fraction`: the nearest whole number. */
export function dropoutCount(peers: number, fraction: number): number {
  return Math.round(peers * fraction);
}

/**
 * The dropout phase of each peer (by index), or undefined for a peer that
 * stays: `count` peers picked uniformly from the seed, each at `at` or, when
 * absent, at a phase of the mode picked from the seed.
 */
export function dropoutPlan(
  seed: number,
  peers: number,
  count: number,
  options: { at?: Phase | undefined; phases: readonly Phase[] },
): (Phase | undefined)[] {
  const random = streamFor(seed, DROPOUT, 0);
  const order = Array.from({ length: peers }, (_, i) => i);
  // A partial Fisher–Yates shuffle: the first `count` entries are a uniform choice.
  for (let i = 0; i < count; i++) {
    const j = i + Math.floor(random() * (peers - i));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const plan = new Array<Phase | undefined>(peers).fill(undefined);
  for (const index of order.slice(0, count)) {
    plan[index] = options.at ?? options.phases[Math.floor(random() * options.phases.length)]!;
  }
  return plan;
}

/** How one peer's round ended, as a worker saw it. */
export interface PeerEnd {
  index: number;
  name: string;
  status: "done" | "dropped" | "failed";
  droppedAt?: Phase;
}

/** Whether a round went as planned, and the peers that did not. */
export interface PlanCheck<T extends PeerEnd> {
  /** The names whose inputs the sum should hold, sorted. */
  expected: string[];
  /** Peers that did not end as planned: a stayer that did not finish, a dropout that did. */
  unexpected: T[];
  /** No unexpected peer, and the hospital summed exactly `expected`. */
  asPlanned: boolean;
}

/**
 * Checks a round against its plan: every peer that was to stay finished,
 * every dropout was cut at its own phase, and the hospital summed exactly
 * the peers still contributing (`contributors`, as it reports them).
 */
export function checkPlan<T extends PeerEnd>(
  plan: readonly (Phase | undefined)[],
  names: readonly string[],
  ends: readonly T[],
  contributors: readonly string[],
): PlanCheck<T> {
  const expected = names.filter((_, i) => plan[i] === undefined || stillContributes(plan[i]!))
    .sort();
  const unexpected = ends.filter((end) => {
    const planned = plan[end.index];
    return planned === undefined
      ? end.status !== "done"
      : end.status !== "dropped" || end.droppedAt !== planned;
  });
  const summed = [...contributors].sort();
  const sameSet = summed.length === expected.length && summed.every((n, i) => n === expected[i]);
  // Every peer must have reported: a missing report is a peer nobody saw end.
  return {
    expected,
    unexpected,
    asPlanned: unexpected.length === 0 && ends.length === names.length && sameSet,
  };
}
