/**
 * The hospital's side of one v2 round, as a sans-I/O state machine: the
 * runtime feeds it decoded messages, chunks, disconnects and deadline
 * events; it sends through the injected Outbox and ends with an outcome.
 * Events are processed one at a time in the order they were given (each
 * handler awaits Web Crypto), so the runtime may call without awaiting.
 *
 * @module
 */

import type { Layout } from "../../query.ts";
import type { Chunk, Message, Terms } from "../../wire/messages.ts";
import type { HospitalOutcome } from "../types.ts";
import { inviteAll } from "./advertise_keys.ts";
import {
  abortRound,
  HospitalContext,
  type HospitalOptions,
  type HospitalPhase,
  type HospitalState,
} from "./state.ts";

export type { HospitalOptions, HospitalPhase, Invitee } from "./state.ts";

/** One round, run by the hospital. */
export class HospitalRound {
  #ctx: HospitalContext;
  #state: HospitalState | undefined;
  #queue: Promise<void> = Promise.resolve();
  #resolve!: (outcome: HospitalOutcome) => void;
  /** Resolves with the outcome once the round is done or aborted. */
  readonly finished: Promise<HospitalOutcome>;

  constructor(options: HospitalOptions) {
    this.#ctx = new HospitalContext(options);
    this.finished = new Promise((resolve) => this.#resolve = resolve);
  }

  /** The session id (32 lowercase hex digits). */
  get session(): string {
    return this.#ctx.session;
  }

  /** The current phase; the runtime restarts its deadline timer when this changes. */
  get phase(): HospitalPhase | "new" {
    return this.#state?.phase ?? "new";
  }

  /** The round's terms, as signed in INVITE. */
  get terms(): Terms {
    return this.#ctx.terms;
  }

  /**
   * The round's vector layout, computed from the terms: what the result is
   * decoded with (lib/query.ts `decodeResult(query, result, scale, layout)`).
   */
  get layout(): Layout {
    return this.#ctx.layout;
  }

  /** The START roster's names, sorted (empty before START). */
  get participants(): string[] {
    return this.#ctx.roster.map((p) => p.name);
  }

  /** The outcome, once there is one. */
  get outcome(): HospitalOutcome | undefined {
    return this.#ctx.outcome;
  }

  /** Sends INVITE to every invitee. */
  start(): Promise<void> {
    return this.#run(async () => {
      if (this.#state) throw new Error("Cannot start round: it has started");
      return await inviteAll(this.#ctx);
    });
  }

  /** A decoded message from the party TLS authenticated as `from`. */
  message(from: string, message: Message): Promise<void> {
    return this.#run((state) => state.handle(from, message));
  }

  /** A decoded chunk frame from `from`. */
  chunk(from: string, chunk: Chunk): Promise<void> {
    return this.#run((state) => state.chunk(from, chunk));
  }

  /**
   * The connection to `name` closed, or its frames could not be decoded (the
   * runtime closes such a connection and reports it here).
   */
  disconnected(name: string): Promise<void> {
    return this.#run((state) => state.disconnected(name));
  }

  /**
   * `name` was sent PROCEED and has sent INPUT, but too few bytes of its
   * masked input came in the runtime's window (lib/runtime/
   * upload_watchdog.ts): it is lost, and its upload slot goes on.
   */
  stalled(name: string): Promise<void> {
    return this.#run((state) => state.stalled(name));
  }

  /** The current phase's deadline passed. */
  timeout(): Promise<void> {
    return this.#run((state) => state.timeout());
  }

  /**
   * Ends the round now (the operator gave up), telling every party. Once
   * DONE is out the result stands: the round ends with the attestations it
   * has instead.
   */
  abort(reason: string): Promise<void> {
    return this.#run((state) =>
      state?.phase === "attest" ? state.timeout() : Promise.resolve(abortRound(this.#ctx, reason))
    );
  }

  #run(step: (state: HospitalState) => Promise<HospitalState>): Promise<void> {
    const run = this.#queue.then(async () => {
      if (this.#ctx.outcome) {
        this.#ctx.log("ignored an event: the round is over");
        return;
      }
      const state = this.#state;
      try {
        // Only start() runs without a state, and it ignores the argument.
        this.#state = await step(state as HospitalState);
      } catch (error) {
        this.#state = abortRound(this.#ctx, `internal error: ${(error as Error).message}`);
      }
      if (this.#ctx.outcome) this.#resolve(this.#ctx.outcome);
    });
    this.#queue = run;
    return run;
  }
}
