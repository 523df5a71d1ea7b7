/**
 * Hospital phase 2, ShareKeys (threshold rounds; fcp/secagg R1): each
 * confirmed participant sends its Shamir shares of its mask key and self
 * seed, one sealed blob per other confirmed participant. The hospital cannot
 * open them; it relays to each participant the blobs addressed to it, from
 * every participant that sent a complete set (U2). Then MaskedInput over U2.
 *
 * | event from a confirmed participant         | decision                        |
 * | ------------------------------------------ | ------------------------------- |
 * | sealed addressed to exactly the others     | recorded                        |
 * |   of the confirmed set                     |                                 |
 * | sealed missing or adding a recipient       | violation: dropped              |
 * | a second sealed                            | violation: dropped              |
 * | abort, disconnect                          | dropped                         |
 * | timeout, or everyone answered              | relay shares to U2, or abort if |
 * |                                            | |U2| < T or < min contributors  |
 *
 * @module
 */

import { Awaited } from "./awaited.ts";
import type { Message, MessageOf } from "../../wire/messages.ts";
import { admitAllAhead, MaskedInputState } from "./masked_input.ts";
import { abortRound, type HospitalContext, HospitalState } from "./state.ts";

/** Collecting SEALED. */
export class ShareKeysState extends HospitalState {
  readonly phase = "share";
  #confirmed: readonly string[];
  readonly #awaited: Awaited;
  #members: ReadonlySet<string>;
  #sealed = new Map<string, Map<string, Uint8Array>>();

  constructor(ctx: HospitalContext, confirmed: readonly string[]) {
    super(ctx);
    this.#confirmed = confirmed;
    this.#awaited = new Awaited(this.#confirmed);
    this.#members = new Set(confirmed);
  }

  protected override member(name: string): boolean {
    return this.#members.has(name);
  }

  /** Whom `from` must seal to: the other confirmed (sparse: in its window), sorted. */
  #recipients(from: string): string[] {
    const graph = this.ctx.graph;
    if (!graph) return this.#confirmed.filter((n) => n !== from);
    return graph.within(from, this.#members).filter((n) => n !== from);
  }

  protected async collect(from: string, message: Message): Promise<HospitalState> {
    if (message.type !== "sealed") return this;
    if (this.#sealed.has(from)) return await this.lost(from, "second sealed");
    const expected = this.#recipients(from);
    const to = message.shares.map((s) => s.to);
    if (to.length !== expected.length || to.some((n, i) => n !== expected[i])) {
      return await this.lost(from, "its shares are not addressed to exactly the confirmed set");
    }
    this.#sealed.set(from, new Map(message.shares.map((s) => [s.to, s.sealed])));
    return await this.settle();
  }

  protected waiting(): boolean {
    return this.#awaited.any((n) => this.ctx.live(n) && !this.#sealed.has(n));
  }

  timeout(): Promise<HospitalState> {
    const ctx = this.ctx;
    for (const name of this.#confirmed) {
      if (ctx.live(name) && !this.#sealed.has(name)) ctx.drop(name, "no shares by the deadline");
    }
    let holders = this.#confirmed.filter((n) => ctx.live(n) && this.#sealed.has(n));
    const graph = ctx.graph;
    if (graph) {
      // Sparse: a holder with fewer than T holders in its window could not
      // be unmasked nor unmask anyone; it would abort on SHARES anyway.
      const sent = new Set(holders);
      for (const name of holders) {
        if (graph.within(name, sent).length < ctx.terms.threshold) {
          ctx.drop(name, "fewer than T neighbours shared keys");
        }
      }
      holders = holders.filter((n) => ctx.live(n));
    }
    const floor = Math.max(ctx.terms.threshold, ctx.terms.minContributors);
    if (holders.length < floor) {
      return Promise.resolve(
        abortRound(ctx, `${holders.length} participants shared keys; ${floor} are needed`),
      );
    }
    const held = new Set(holders);
    const outgoing = new Map<string, MessageOf<"shares">["shares"]>();
    for (const to of holders) {
      const senders = graph ? graph.within(to, held) : holders;
      const shares = senders.filter((from) => from !== to).map((from) => ({
        from,
        sealed: this.#sealed.get(from)!.get(to)!,
      }));
      // Sparse only: every neighbour left after the check above.
      if (shares.length === 0) ctx.drop(to, "no neighbour shared keys");
      else outgoing.set(to, shares);
    }
    // PROCEED goes ahead of SHARES if every holder's upload fits; after the
    // drops above, so that a dropped holder gets ABORT alone (§11.1).
    const admitted = admitAllAhead(ctx, holders);
    for (const [to, shares] of outgoing) {
      ctx.send(to, { type: "shares", session: ctx.session, shares });
    }
    // A holder dropped just above stays in H: its neighbours hold its shares
    // and mask with it, so its mask key is rebuilt like any dropped holder's.
    return Promise.resolve(new MaskedInputState(ctx, holders, admitted));
  }
}
