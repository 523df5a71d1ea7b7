/**
 * The agent's side of the serving hospital's heartbeat (docs/protocol.md
 * §16.2): a watchdog fed on every frame the agent reads, which ends the
 * connection when the hospital has been silent for three heartbeat
 * intervals. Why: between rounds the agent only reads, so a dead hospital
 * host or a dropped NAT mapping leaves its socket open and silent for ever;
 * TCP never notices a path nobody writes on.
 *
 * The watchdog arms on the first `idle` frame: a hospital that sends none
 * (the one-shot hospital) is not held to a heartbeat it never promised, and
 * a one-shot round keeps the waits it had. While a round is in progress
 * (`busy`), silence is the round's phase deadlines' business, not this one's:
 * the hospital sends no heartbeat inside an agent's part of a round, and
 * resumes it once that part is over (refused, dropped, attested), however
 * long the rest of the round takes.
 *
 * @module
 */

import { isIdle } from "../wire/messages.ts";

/** The longest interval H a serving hospital may leave between two `idle` frames. */
export const IDLE_INTERVAL_MS = 15_000;

/** The connection was silent for longer than the heartbeat allows. */
export class ConnectionSilentError extends Error {
  override name = "ConnectionSilentError";
}

/** The timers the watchdog runs on; injected by tests. */
export interface LivenessClock {
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(id: unknown): void;
}

/** Options for {@linkcode Liveness}. */
export interface LivenessOptions {
  /** Whether a round is in progress: its silence is not counted. */
  busy?: () => boolean;
  /** Where the watchdog says why it ended the connection. */
  log?: (line: string) => void;
  /** The largest H it assumes; default {@linkcode IDLE_INTERVAL_MS}. */
  intervalMs?: number;
  clock?: LivenessClock;
}

const SYSTEM_CLOCK: LivenessClock = {
  now: () => performance.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (id) => clearTimeout(id as ReturnType<typeof setTimeout>),
};

/**
 * A watchdog over one connection: {@linkcode Liveness.heard} on every frame
 * read; it aborts `stop` with a {@linkcode ConnectionSilentError} after 3·H
 * without one once armed. The frame carries nothing, so the hospital's own
 * beat tells H: the longest interval seen between two `idle` frames with no
 * other frame between them, at most `intervalMs` (that until two have come).
 * The longest, not the shortest: a beat delayed on the way makes the next
 * gap short, and a watchdog that believed it would give up on a live link.
 */
export class Liveness {
  #stop: AbortController;
  #options: LivenessOptions;
  #clock: LivenessClock;
  #maxInterval: number;
  /** The longest pure idle-to-idle gap seen; undefined until there is one. */
  #gap: number | undefined;
  #armed = false;
  #lastHeard = 0;
  #lastIdle: number | undefined;
  #timer: unknown;
  #closed = false;

  constructor(stop: AbortController, options: LivenessOptions = {}) {
    this.#stop = stop;
    this.#options = options;
    this.#clock = options.clock ?? SYSTEM_CLOCK;
    this.#maxInterval = options.intervalMs ?? IDLE_INTERVAL_MS;
  }

  /** H as this side takes it, in ms. */
  get intervalMs(): number {
    return Math.min(this.#gap ?? this.#maxInterval, this.#maxInterval);
  }

  /** The silence after which the connection counts as lost, in ms (3·H). */
  get limitMs(): number {
    return 3 * this.intervalMs;
  }

  /** Whether the watchdog is armed (an `idle` came on this connection). */
  get armed(): boolean {
    return this.#armed;
  }

  /**
   * Feeds the watchdog with one frame's payload. Returns whether it was the
   * `idle` heartbeat, which the reader then skips: it carries nothing.
   */
  heard(payload: Uint8Array): boolean {
    if (this.#closed) return isIdle(payload);
    const now = this.#clock.now();
    this.#lastHeard = now;
    if (!isIdle(payload)) {
      // A gap with other frames in it says nothing about the beat.
      this.#lastIdle = undefined;
      if (this.#armed) this.#schedule(this.limitMs);
      return false;
    }
    if (this.#lastIdle !== undefined) this.#gap = Math.max(this.#gap ?? 0, now - this.#lastIdle);
    this.#lastIdle = now;
    this.#armed = true;
    this.#schedule(this.limitMs);
    return true;
  }

  /** Stops the watchdog; it never fires after this. */
  close(): void {
    this.#closed = true;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #schedule(ms: number): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = this.#clock.setTimeout(() => this.#check(), ms);
  }

  #check(): void {
    this.#timer = undefined;
    if (this.#closed || this.#stop.signal.aborted) return;
    const now = this.#clock.now();
    // A round in progress: its silence is bounded by its own deadlines, and
    // the count starts afresh when it ends.
    if (this.#options.busy?.()) {
      this.#lastHeard = now;
      this.#lastIdle = undefined;
    }
    const silent = now - this.#lastHeard;
    if (silent < this.limitMs) {
      this.#schedule(this.limitMs - silent);
      return;
    }
    const error = new ConnectionSilentError(
      `Connection lost: no word from the hospital in ${formatSeconds(silent)} (its heartbeat is ${
        formatSeconds(this.intervalMs)
      })`,
    );
    this.close();
    this.#options.log?.(error.message);
    this.#stop.abort(error);
  }
}

function formatSeconds(ms: number): string {
  return `${Math.round(ms / 100) / 10} s`;
}
