/**
 * A peer's side of one v2 round, as a sans-I/O state machine: the runtime
 * feeds it the hospital's decoded messages, disconnects and deadline
 * events; it sends through the injected Outbox (always to the hospital) and
 * ends with an outcome. Events are processed one at a time in order.
 *
 * @module
 */

import type { Layout } from "../../query.ts";
import type { Message, Terms } from "../../wire/messages.ts";
import type { PeerOutcome } from "../types.ts";
import { AwaitInviteState } from "./await_invite.ts";
import {
  abortSession,
  PeerContext,
  type PeerOptions,
  type PeerPhase,
  type PeerState,
} from "./state.ts";

export type { PeerOptions, PeerPhase } from "./state.ts";

/** One round, as one peer takes part in it. */
export class PeerSession {
  #ctx: PeerContext;
  #state: PeerState;
  #queue: Promise<void> = Promise.resolve();
  #resolve!: (outcome: PeerOutcome) => void;
  /** Resolves with the outcome once the session is done or aborted. */
  readonly finished: Promise<PeerOutcome>;

  constructor(options: PeerOptions) {
    this.#ctx = new PeerContext(options);
    this.#state = new AwaitInviteState(this.#ctx);
    this.finished = new Promise((resolve) => this.#resolve = resolve);
  }

  /** The session id, once an invite was accepted ("" before). */
  get session(): string {
    return this.#ctx.session;
  }

  /** The round's terms, once an invite was accepted: the runtime takes its deadlines from them. */
  get terms(): Terms | undefined {
    return this.#ctx.terms;
  }

  /** The vector layout this peer computed from the accepted terms (undefined before). */
  get layout(): Layout | undefined {
    return this.#ctx.layout;
  }

  /** The current phase; the runtime restarts its deadline timer when this changes. */
  get phase(): PeerPhase {
    return this.#state.phase;
  }

  /**
   * The set this peer's input goes to, as this core accepted it (sorted): the
   * names of the START roster it checked in an n-of-n round (a sparse round:
   * its window), the survivors set it signed in a threshold round; undefined
   * before then. A runtime that records the set must take it from here, not
   * from a message, since a message the core ignored (a second START) was
   * never checked.
   */
  get contributors(): string[] | undefined {
    const ctx = this.#ctx;
    if (ctx.terms?.mode === "nofn") {
      return ctx.roster.length > 0 ? ctx.roster.map((p) => p.name).sort() : undefined;
    }
    return ctx.survivors.length > 0 ? [...ctx.survivors].sort() : undefined;
  }

  /** The outcome, once there is one. */
  get outcome(): PeerOutcome | undefined {
    return this.#ctx.outcome;
  }

  /** A decoded message from the hospital. */
  message(message: Message): Promise<void> {
    return this.#run((state) => state.handle(message));
  }

  /** A chunk frame from the hospital (always a protocol violation). */
  chunk(): Promise<void> {
    return this.#run((state) => state.chunk());
  }

  /** The connection to the hospital closed or sent undecodable frames. */
  disconnected(): Promise<void> {
    return this.#run((state) => state.disconnected());
  }

  /**
   * The runtime is idle (what the last event sent has left): lets the
   * current phase start work ahead, such as the pairwise seeds while it
   * waits for CONFIRMATIONS. Not an event: it changes no state, sends
   * nothing, and is not queued behind events.
   */
  prepare(): void {
    if (this.#ctx.outcome) return;
    try {
      this.#state.prepare();
    } catch (error) {
      // Work ahead is only ever an optimisation: the event that needs it does it again.
      this.#ctx.log(`could not prepare ahead: ${(error as Error).message}`);
    }
  }

  /** The current phase's deadline passed. */
  timeout(): Promise<void> {
    return this.#run((state) => state.timeout());
  }

  #run(step: (state: PeerState) => Promise<PeerState>): Promise<void> {
    const run = this.#queue.then(async () => {
      if (this.#ctx.outcome) {
        this.#ctx.log("ignored an event: the round is over");
        return;
      }
      try {
        this.#state = await step(this.#state);
      } catch (error) {
        this.#state = abortSession(this.#ctx, `internal error: ${(error as Error).message}`);
      }
      if (this.#ctx.outcome) this.#resolve(this.#ctx.outcome);
    });
    this.#queue = run;
    return run;
  }
}
