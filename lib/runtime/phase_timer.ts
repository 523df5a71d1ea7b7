/**
 * The one clock of a protocol run: the sans-I/O core has none, so the
 * runtime restarts a deadline whenever the core's phase changes and delivers
 * `timeout()` when it passes. Deadlines come from the round's announced
 * terms (see docs/protocol.md, "Timers").
 *
 * @module
 */

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

/** Restarts a deadline whenever the watched phase changes. */
export class PhaseTimer {
  #phase: string | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #deadlineOf: (phase: string) => number | undefined;
  #onTimeout: (phase: string) => void;
  #stopped = false;

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
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const ms = this.#deadlineOf(phase);
    if (ms === undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (!this.#stopped && this.#phase === phase) this.#onTimeout(phase);
    }, ms);
  }

  /** Cancels the pending deadline for good. Idempotent. */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
