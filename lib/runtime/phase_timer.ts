/**
 * The one clock of a protocol run: the sans-I/O core has none, so the
 * runtime restarts a deadline whenever the core's phase changes and delivers
 * `timeout()` when it passes. Deadlines come from the round's announced
 * terms (see docs/protocol.md, "Timers").
 *
 * @module
 */

import process from "node:process";
import type { Deadlines } from "../wire/messages.ts";

/** The deadline of each phase both roles share, by the name of its `Deadlines` field. */
const PHASE_DEADLINE: Record<string, keyof Deadlines> = {
  advertise: "joinMs",
  join: "joinMs",
  confirm: "confirmMs",
  share: "shareMs",
  input: "inputMs",
  consistency: "consistencyMs",
  unmask: "unmaskMs",
  // After DONE the hospital waits for the survivors' attestations as long
  // as for their reveals (docs/protocol.md §12); the peers send them at once.
  attest: "unmaskMs",
};

/** The announced deadline of `phase`, or undefined for a phase without one (done, aborted). */
export function phaseDeadline(deadlines: Deadlines, phase: string): number | undefined {
  const key = PHASE_DEADLINE[phase];
  return key === undefined ? undefined : deadlines[key];
}

/**
 * A peer waits a little longer than the hospital in every phase, so that the
 * hospital, which sees every party, decides first what a late party means.
 */
export function peerGrace(ms: number): number {
  return ms + Math.max(2_000, Math.ceil(ms / 2));
}

/** How long the last messages of a round (DONE, ABORT) may take to leave. */
const FLUSH_TIMEOUT_MS = 2_000;

/**
 * Waits until `writes` have left, or {@linkcode FLUSH_TIMEOUT_MS} at most, so
 * a round's last message reaches the other side before its connection closes.
 */
export async function flushWrites(writes: Iterable<Promise<void>>): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    Promise.allSettled(writes),
    new Promise((resolve) => timer = setTimeout(resolve, FLUSH_TIMEOUT_MS)),
  ]);
  clearTimeout(timer);
}

/** When a phase began: `performance.now()` and this process's CPU time so far, in milliseconds. */
export interface PhaseMark {
  phase: string;
  at: number;
  cpu: number;
}

/** This process's CPU time (user and system) so far, in milliseconds. */
export function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

/**
 * A timeline as one log line: each phase with how long it lasted and the
 * process CPU time spent in it (to the next phase, or to `end` for the last
 * one), e.g. "join 3.1 ms (cpu 2.9), confirm 12.0 ms (cpu 1.2)": a phase
 * with little CPU for its time was waiting for the other side.
 */
export function formatTimeline(marks: readonly PhaseMark[], end: PhaseMark): string {
  return marks.map((mark, i) => {
    const next = marks[i + 1] ?? end;
    return `${mark.phase} ${(next.at - mark.at).toFixed(1)} ms (cpu ${
      (next.cpu - mark.cpu).toFixed(1)
    })`;
  }).join(", ");
}

/** Restarts a deadline whenever the watched phase changes, and notes when each phase began. */
export class PhaseTimer {
  #phase: string | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #deadlineOf: (phase: string) => number | undefined;
  #onTimeout: (phase: string) => void;
  #stopped = false;
  #marks: PhaseMark[] = [];

  /**
   * `deadlineOf` gives a phase's deadline in milliseconds (undefined: none);
   * `onTimeout` is called once when the phase it names has lasted that long.
   */
  constructor(
    deadlineOf: (phase: string) => number | undefined,
    onTimeout: (phase: string) => void,
  ) {
    this.#deadlineOf = deadlineOf;
    this.#onTimeout = onTimeout;
  }

  /** Tells the timer the current phase; a new phase restarts the deadline. */
  update(phase: string): void {
    if (this.#stopped || phase === this.#phase) return;
    this.#phase = phase;
    this.#marks.push({ phase, at: performance.now(), cpu: cpuMs() });
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const ms = this.#deadlineOf(phase);
    if (ms === undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (!this.#stopped && this.#phase === phase) this.#onTimeout(phase);
    }, ms);
  }

  /**
   * Each phase seen, in order, with the time it began: where a round's time
   * went (the phase a peer is in while it waits is the one it waits in).
   */
  get timeline(): readonly PhaseMark[] {
    return [...this.#marks];
  }

  /** Cancels the pending deadline for good. Idempotent. */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
