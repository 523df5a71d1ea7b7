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

import { Awaited } from "./awaited.ts";
import { verify } from "../../crypto/signing.ts";
import type { Message } from "../../wire/messages.ts";
import { consistencyFields, viewFields } from "../transcript.ts";
import { abortRound, type HospitalContext, HospitalState } from "./state.ts";
import { UnmaskingState } from "./unmasking.ts";

/** Collecting CONSISTENCY. */
export class ConsistencyState extends HospitalState {
  readonly phase = "consistency";
  #holders: readonly string[];
  #survivors: readonly string[];
  readonly #awaited: Awaited;
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
    this.#awaited = new Awaited(this.#survivors);
    this.#sum = sum;
  }

  protected override member(name: string): boolean {
    return this.#survived.has(name);
  }

  get #survived(): ReadonlySet<string> {
    return this.#survivorSet ??= new Set(this.#survivors);
  }
  #survivorSet: Set<string> | undefined;

  /** What `from` signs: S (complete graph), or its view of S in its window (sparse, §18). */
  #fields(from: string) {
    const graph = this.ctx.graph;
    if (!graph) return consistencyFields(this.ctx.session, this.ctx.startHash, this.#survivors);
    return viewFields(this.ctx.session, this.ctx.startHash, this.#view(from));
  }

  /** `name`'s view of S in its window: asked once per signer and once per neighbour it has. */
  #view(name: string): string {
    let view = this.#views.get(name);
    if (view === undefined) {
      view = this.ctx.graph!.bitmap(name, this.#survived);
      this.#views.set(name, view);
    }
    return view;
  }
  #views = new Map<string, string>();

  protected async collect(from: string, message: Message): Promise<HospitalState> {
    if (message.type !== "consistency") return this;
    if (this.#signatures.has(from)) return await this.lost(from, "second consistency");
    const fields = this.#fields(from);
    if (!(await verify(this.ctx.verifyKeys.get(from)!, message.signature, "consistency", fields))) {
      return await this.lost(from, "its consistency signature does not verify");
    }
    this.#signatures.set(from, message.signature);
    return await this.settle();
  }

  protected waiting(): boolean {
    return this.#awaited.any((n) => this.ctx.live(n) && !this.#signatures.has(n));
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
    const graph = ctx.graph;
    if (graph) {
      // Sparse: each signer gets S in its window and its neighbours' signed views;
      // one with fewer than T signing neighbours is not asked to reveal.
      const signed = new Set(signers);
      const asked: string[] = [];
      for (const name of signers) {
        const local = graph.within(name, signed);
        if (local.length < ctx.terms.threshold) continue;
        asked.push(name);
        ctx.send(name, {
          type: "unmask",
          session: ctx.session,
          set: graph.within(name, this.#survived),
          signatures: local.map((n) => ({
            name: n,
            signature: this.#signatures.get(n)!,
            view: this.#view(n),
          })),
        });
      }
      return Promise.resolve(
        new UnmaskingState(ctx, this.#holders, this.#survivors, asked, this.#sum),
      );
    }
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
