/**
 * The hospital admits a bounded number of uploads at a time (PROCEED,
 * docs/protocol.md §10.9), so an admitted peer that stops sending would hold
 * its slot, and every upload queued behind it, until the masked-input
 * deadline. This watchdog cuts such a peer instead: once a peer has sent
 * INPUT and been sent PROCEED (in either order: PROCEED may go out before
 * INPUT, when every upload fits), at least {@linkcode MIN_PROGRESS_BYTES}
 * more must arrive on its connection in every `stallMs` until its vector is
 * complete. Bytes, not frames: a 512 KiB chunk frame takes 10 s over a
 * 52 KB/s link, and such a peer is slow, not stalled (review 7). A peer
 * still computing its masked input is not timed.
 *
 * The core has no clock, so this lives in the runtime, which sees both, and
 * tells the core (`HospitalRound.stalled`), which drops the peer and passes
 * its slot on.
 *
 * @module
 */

import type { HospitalPhase } from "../protocol/hospital/state.ts";

/** Longest window for {@linkcode MIN_PROGRESS_BYTES}, unless the phase deadline is shorter. */
export const UPLOAD_STALL_MS = 10_000;

/**
 * Bytes an admitted upload must move per window: 64 KiB in 10 s is 6.5 KB/s,
 * below any link a round of vectors could finish over.
 */
export const MIN_PROGRESS_BYTES = 64 * 1024;

/** The window for a round whose masked-input deadline is `inputMs`. */
export function stallMs(inputMs: number): number {
  return Math.min(UPLOAD_STALL_MS, inputMs);
}

/** The phases after the masked inputs: no upload is admitted in them. */
const PAST_UPLOADS: ReadonlySet<HospitalPhase> = new Set<HospitalPhase>([
  "consistency",
  "unmask",
  "attest",
  "done",
  "aborted",
]);

/** Whether a hospital round in `phase` is past its masked inputs. */
export function uploadsOver(phase: HospitalPhase | "new"): boolean {
  return phase !== "new" && PAST_UPLOADS.has(phase);
}

/** What an {@linkcode UploadWatchdog} needs. */
export interface UploadWatchdogOptions {
  /** The window in which {@linkcode MIN_PROGRESS_BYTES} must arrive. */
  stallMs: number;
  /** Bytes received on `name`'s connection so far. */
  received: (name: string) => number;
  /** Called once per stalled upload. */
  onStall: (name: string) => void;
}

/** Watches the admitted uploads of one round. */
export class UploadWatchdog {
  #options: UploadWatchdogOptions;
  #timers = new Map<string, ReturnType<typeof setTimeout>>();
  #proceeded = new Set<string>();
  #inputs = new Set<string>();
  #stopped = false;

  constructor(options: UploadWatchdogOptions) {
    this.#options = options;
  }

  /** How many admitted uploads are being watched. */
  get watching(): number {
    return this.#timers.size;
  }

  /** `name` was sent PROCEED: it is timed once its INPUT is in. */
  proceedSent(name: string): void {
    this.#proceeded.add(name);
    if (this.#inputs.has(name)) this.#arm(name);
  }

  /** `name`'s INPUT arrived: it is timed once it is sent PROCEED. */
  inputReceived(name: string): void {
    if (this.#inputs.has(name)) return;
    this.#inputs.add(name);
    if (this.#proceeded.has(name)) this.#arm(name);
  }

  /** `name`'s last chunk arrived, or its connection is gone: it is not timed any more. */
  complete(name: string): void {
    clearTimeout(this.#timers.get(name));
    this.#timers.delete(name);
  }

  /** Stops every timer, for good (the phase is over); idempotent. */
  stop(): void {
    for (const timer of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
    this.#stopped = true;
  }

  #arm(name: string): void {
    if (this.#stopped || this.#timers.has(name)) return;
    const { stallMs, received, onStall } = this.#options;
    let mark = received(name);
    const check = () => {
      const now = received(name);
      if (now - mark >= MIN_PROGRESS_BYTES) {
        mark = now;
        this.#timers.set(name, setTimeout(check, stallMs));
        return;
      }
      this.#timers.delete(name);
      onStall(name);
    };
    this.#timers.set(name, setTimeout(check, stallMs));
  }
}
