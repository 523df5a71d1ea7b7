/**
 * Hospital phase 1, Confirm: START has gone out; collect each participant's
 * signature over the START transcript hash. Then relay every valid
 * confirmation to every confirmed participant, so each can check for itself
 * who saw the same roster. Threshold rounds go on to ShareKeys with the
 * confirmed (if at least T and the minimum contributors); n-of-n rounds need
 * every participant and go on to MaskedInput.
 *
 * | event from a participant        | decision                                       |
 * | ------------------------------- | ---------------------------------------------- |
 * | confirm that verifies           | confirmed                                      |
 * | confirm that does not verify    | violation (threshold: dropped; n-of-n: abort)  |
 * | a second confirm                | violation                                      |
 * | abort, disconnect               | lost (threshold: dropped; n-of-n: abort)       |
 * | timeout, or everyone answered   | relay confirmations, or abort below the floors |
 *
 * @module
 */

import { Awaited } from "./awaited.ts";
import { verify } from "../../crypto/signing.ts";
import type { Message } from "../../wire/messages.ts";
import { confirmFields } from "../transcript.ts";
import { admitAllAhead, MaskedInputState } from "./masked_input.ts";
import { ShareKeysState } from "./share_keys.ts";
import { abortRound, HospitalState } from "./state.ts";

/** Collecting CONFIRM. */
export class ConfirmState extends HospitalState {
  readonly phase = "confirm";
  #confirmed = new Map<string, Uint8Array>();
  readonly #awaited = new Awaited(this.ctx.roster.map((p) => p.name));

  protected async collect(from: string, message: Message): Promise<HospitalState> {
    if (message.type !== "confirm") return this;
    if (this.#confirmed.has(from)) return await this.lost(from, "second confirm");
    const ctx = this.ctx;
    // Sparse: the n and the position this hospital's START gave the peer (§18.3).
    const fields = confirmFields(
      ctx.session,
      ctx.startHash,
      ctx.graph ? { size: ctx.graph.order.length, position: ctx.graph.position(from) } : undefined,
    );
    if (!(await verify(ctx.verifyKeys.get(from)!, message.signature, "confirm", fields))) {
      return await this.lost(from, "its confirmation does not verify");
    }
    this.#confirmed.set(from, message.signature);
    return await this.settle();
  }

  protected waiting(): boolean {
    return this.#awaited.any((n) => this.ctx.live(n) && !this.#confirmed.has(n));
  }

  timeout(): Promise<HospitalState> {
    const ctx = this.ctx;
    const confirmed = ctx.roster.map((p) => p.name).filter((n) =>
      ctx.live(n) && this.#confirmed.has(n)
    );
    if (!ctx.threshold && confirmed.length < ctx.roster.length) {
      return Promise.resolve(abortRound(ctx, "not every participant confirmed the roster"));
    }
    if (ctx.threshold) {
      for (const p of ctx.roster) {
        if (ctx.live(p.name) && !this.#confirmed.has(p.name)) {
          ctx.drop(p.name, "no confirmation by the deadline");
        }
      }
      const floor = Math.max(ctx.terms.threshold, ctx.terms.minContributors);
      if (confirmed.length < floor) {
        return Promise.resolve(
          abortRound(ctx, `${confirmed.length} participants confirmed; ${floor} are needed`),
        );
      }
    }
    const confirmations = confirmed.map((name) => ({
      name,
      signature: this.#confirmed.get(name)!,
    }));
    ctx.signed.confirmations = confirmations;
    // n-of-n: the masked inputs come next; PROCEED goes ahead if all fit.
    const admitted = !ctx.threshold && admitAllAhead(ctx, confirmed);
    const graph = ctx.graph;
    if (graph) {
      // Sparse: each peer checks only its neighbours' confirmations (§18).
      const signed = new Set(confirmed);
      for (const name of confirmed) {
        const local = graph.within(name, signed).map((n) => ({
          name: n,
          signature: this.#confirmed.get(n)!,
        }));
        ctx.send(name, { type: "confirmations", session: ctx.session, confirmations: local });
      }
    } else {
      for (const name of confirmed) {
        ctx.send(name, { type: "confirmations", session: ctx.session, confirmations });
      }
    }
    return Promise.resolve(
      ctx.threshold
        ? new ShareKeysState(ctx, confirmed)
        : new MaskedInputState(ctx, confirmed, admitted),
    );
  }
}
