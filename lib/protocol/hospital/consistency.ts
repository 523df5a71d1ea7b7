/**
 * Hospital phase 4, Consistency (threshold rounds; the malicious-server
 * variant's extra round): SURVIVORS has told each survivor the set S whose
 * masked inputs the hospital holds; collect each survivor's signature over
 * (session, START hash, S). With at least T of them, UNMASK carries S and
 * the signatures to every signer; a peer reveals only on seeing T valid
 * signatures on its own S, so no two different sets can both be unmasked.
 *
 * | event from a survivor                 | decision                              |
 * | ------------------------------------- | ------------------------------------- |
 * | consistency that verifies over S      | signer                                |
 * | consistency that does not verify      | violation: dropped                    |
 * | a second consistency                  | violation: dropped                    |
 * | abort, disconnect                     | dropped (its input stays in S)        |
 * | timeout, or every survivor answered   | UNMASK to the signers, or abort if    |
 * |                                       | fewer than T signed                   |
 *
 * A survivor that neither signs nor leaves is not asked to reveal; it is
 * sent DONE like everyone else, since its input is in the result.
 *
 * @module
 */

import { verify } from "../../crypto/signing.ts";
import type { Message } from "../../wire/messages.ts";
import { consistencyFields } from "../transcript.ts";
import { abortRound, type HospitalContext, HospitalState } from "./state.ts";
import { UnmaskingState } from "./unmasking.ts";

/** Collecting CONSISTENCY. */
export class ConsistencyState extends HospitalState {
  readonly phase = "consistency";
  #holders: readonly string[];
  #survivors: readonly string[];
  #sum: Float64Array;
  #signatures = new Map<string, Uint8Array>();

  constructor(
    ctx: HospitalContext,
    holders: readonly string[],
    survivors: readonly string[],
    sum: Float64Array,
  ) {
    super(ctx);
    this.#holders = holders;
    this.#survivors = survivors;
    this.#sum = sum;
  }

  protected override member(name: string): boolean {
    return this.#survivors.includes(name);
  }

  protected async collect(from: string, message: Message): Promise<HospitalState> {
    if (message.type !== "consistency") return this;
    if (this.#signatures.has(from)) return await this.lost(from, "second consistency");
    const fields = consistencyFields(this.ctx.session, this.ctx.startHash, this.#survivors);
    if (!(await verify(this.ctx.verifyKeys.get(from)!, message.signature, "consistency", fields))) {
      return await this.lost(from, "its consistency signature does not verify");
    }
    this.#signatures.set(from, message.signature);
    return await this.settle();
  }

  protected waiting(): boolean {
    return this.#survivors.some((n) => this.ctx.live(n) && !this.#signatures.has(n));
  }

  timeout(): Promise<HospitalState> {
    const ctx = this.ctx;
    const signers = this.#survivors.filter((n) => ctx.live(n) && this.#signatures.has(n));
    if (signers.length < ctx.terms.threshold) {
      return Promise.resolve(
        abortRound(
          ctx,
          `${signers.length} survivors signed the set; ${ctx.terms.threshold} are needed`,
        ),
      );
    }
    const signatures = signers.map((name) => ({ name, signature: this.#signatures.get(name)! }));
    ctx.signed.consistency = signatures;
    for (const name of signers) {
      ctx.send(name, {
        type: "unmask",
        session: ctx.session,
        set: [...this.#survivors],
        signatures,
      });
    }
    return Promise.resolve(
      new UnmaskingState(ctx, this.#holders, this.#survivors, signers, this.#sum),
    );
  }
}
