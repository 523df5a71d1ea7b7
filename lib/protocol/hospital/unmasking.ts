/**
 * Hospital phase 5, Unmasking (fcp/secagg R3): collect each signer's REVEAL
 * — for every participant that shared keys (U2), its self-seed share if that
 * participant is in S, its mask-key share if not. With at least T reveals:
 * rebuild each survivor's self seed, check it against the commitment the
 * survivor signed in INPUT, and remove PRG(b_j); rebuild each
 * dropped participant's mask key, check it against the maskKey it
 * advertised, and remove its pairwise masks from every survivor's input.
 * What remains is Σ_{j ∈ S} x_j. Every mask is removed segment by segment,
 * modulo each segment's own modulus, from the seed's one stream in vector
 * order, exactly as the peers added it.
 *
 * | event from a signer                                | decision          |
 * | -------------------------------------------------- | ----------------- |
 * | reveal covering exactly U2, self for S, mask else  | recorded          |
 * | reveal covering other peers or the wrong kinds     | violation: dropped|
 * | a second reveal                                    | violation: dropped|
 * | abort, disconnect                                  | dropped           |
 * | timeout, or every signer answered                  | unmask, or abort  |
 * |                                                    | (< T reveals,     |
 * |                                                    | inconsistent      |
 * |                                                    | shares, wrong key,|
 * |                                                    | a self seed off   |
 * |                                                    | its commitment)   |
 *
 * All reveals are used: shares beyond T must lie on the same polynomial, so
 * one lying revealer among more than T is caught rather than summed. With
 * exactly T, the commitments catch it: a self seed is checked against its
 * owner's signed seedCommit, a mask key against its advertised public key.
 * Either failure aborts; the hospital does not try to find the liar (with
 * exactly T shares it cannot), so a lying revealer can stop a round but
 * never change its sum.
 *
 * @module
 */

import { Awaited } from "./awaited.ts";
import { importPublicKey, pairwiseSeed } from "../../crypto/agreement.ts";
import { rebuildMaskKey } from "../../crypto/mask_key.ts";
import { applyMask, pairSign } from "../../crypto/masks.ts";
import { combineSecret, type SecretShare } from "../../crypto/secret_sharing.ts";
import type { Message } from "../../wire/messages.ts";
import { seedCommitment } from "../transcript.ts";
import { finish } from "./masked_input.ts";
import { abortRound, type HospitalContext, HospitalState } from "./state.ts";

/** Collecting REVEAL. */
export class UnmaskingState extends HospitalState {
  readonly phase = "unmask";
  #holders: readonly string[];
  #survivors: readonly string[];
  #signers: readonly string[];
  readonly #awaited: Awaited;
  #sum: Float64Array;
  #reveals = new Map<string, Map<string, Float64Array>>();

  constructor(
    ctx: HospitalContext,
    holders: readonly string[],
    survivors: readonly string[],
    signers: readonly string[],
    sum: Float64Array,
  ) {
    super(ctx);
    this.#holders = holders;
    this.#survivors = survivors;
    this.#signers = signers;
    this.#awaited = new Awaited(this.#signers);
    this.#sum = sum;
  }

  protected override member(name: string): boolean {
    return this.#asked.has(name);
  }

  get #asked(): ReadonlySet<string> {
    return this.#signerSet ??= new Set(this.#signers);
  }
  #signerSet: Set<string> | undefined;
  get #survived(): ReadonlySet<string> {
    return this.#survivorSet ??= new Set(this.#survivors);
  }
  #survivorSet: Set<string> | undefined;

  /** Whose shares `from` reveals: H (complete graph), or H in its window (sparse), sorted. */
  #owners(from: string): readonly string[] {
    const graph = this.ctx.graph;
    return graph ? graph.within(from, this.#held) : this.#holders;
  }

  get #held(): ReadonlySet<string> {
    return this.#holderSet ??= new Set(this.#holders);
  }
  #holderSet: Set<string> | undefined;

  protected async collect(from: string, message: Message): Promise<HospitalState> {
    if (message.type !== "reveal") return this;
    if (this.#reveals.has(from)) return await this.lost(from, "second reveal");
    const of = message.shares.map((s) => s.of);
    const owners = this.#owners(from);
    const right = of.length === owners.length &&
      of.every((n, i) => n === owners[i]) &&
      message.shares.every((s) => s.kind === (this.#survived.has(s.of) ? "self" : "mask"));
    if (!right) return await this.lost(from, "its reveal does not match the survivors set");
    this.#reveals.set(from, new Map(message.shares.map((s) => [s.of, s.share])));
    return await this.settle();
  }

  protected waiting(): boolean {
    return this.#awaited.any((n) => this.ctx.live(n) && !this.#reveals.has(n));
  }

  async timeout(): Promise<HospitalState> {
    const ctx = this.ctx;
    const revealers = this.#signers.filter((n) => ctx.live(n) && this.#reveals.has(n));
    const t = ctx.terms.threshold;
    if (revealers.length < t) {
      return abortRound(ctx, `${revealers.length} survivors revealed shares; ${t} are needed`);
    }
    const graph = ctx.graph;
    const revealed = new Set(revealers);
    // Sparse: only the owner's neighbours hold its shares (§18).
    const revealersOf = (owner: string): readonly string[] =>
      graph ? graph.within(owner, revealed) : revealers;
    const sharesOf = (owner: string): SecretShare[] =>
      revealersOf(owner).map((r) => ({
        x: ctx.index.get(r)! + 1,
        words: this.#reveals.get(r)!.get(owner)!,
      }));
    const sum = this.#sum;
    for (const owner of this.#holders) {
      if (graph) {
        const survivor = this.#survived.has(owner);
        // A dropped holder with no surviving neighbour masked nobody in the sum.
        if (!survivor && graph.within(owner, this.#survived).length === 0) continue;
        const count = revealersOf(owner).length;
        if (count < t) {
          return abortRound(
            ctx,
            `${count} neighbours of ${owner} revealed shares; ${t} are needed to ` +
              (survivor ? "remove its self mask" : "remove its pairwise masks"),
          );
        }
      }
      let secret: Uint8Array;
      try {
        secret = combineSecret(sharesOf(owner), t);
      } catch {
        return abortRound(ctx, `the revealed shares of ${owner} are inconsistent`);
      }
      if (this.#survivors.includes(owner)) {
        // Any T shares interpolate to some seed: with exactly T revealers, a
        // single altered share rebuilds a wrong one and the shares still
        // agree. Only the owner's signed commitment can tell, and removing
        // the wrong PRG(b) would give a wrong sum.
        const committed = ctx.signed.inputs.get(owner)!.seedCommit;
        if ((await seedCommitment(ctx.session, owner, secret)) !== committed) {
          return abortRound(
            ctx,
            `the self seed of ${owner} rebuilt from the shares of ${revealers.join(", ")} ` +
              "does not match its commitment",
          );
        }
        await applyMask(sum, secret, -1, ctx.layout.segments);
        // For the receipt: a verifier removes the same mask to check the result.
        ctx.signed.selfSeeds.push({ name: owner, secret });
        continue;
      }
      const entry = ctx.entries.get(owner)!;
      let maskKey: CryptoKey;
      try {
        maskKey = await rebuildMaskKey(secret, entry.maskKey);
      } catch {
        return abortRound(ctx, `the rebuilt mask key of ${owner} is not the one it advertised`);
      }
      ctx.signed.maskSecrets.push({ name: owner, secret });
      // Every survivor masked with every holder (sparse: in its window, §18).
      const masked = graph ? graph.within(owner, this.#survived) : this.#survivors;
      for (const survivor of masked) {
        const other = await importPublicKey(ctx.entries.get(survivor)!.maskKey);
        const seed = await pairwiseSeed(maskKey, other, ctx.sessionBytes, owner, survivor);
        // The survivor added pairSign(survivor, owner) · PRG(seed): take it out.
        await applyMask(
          sum,
          seed,
          pairSign(survivor, owner) === 1 ? -1 : 1,
          ctx.layout.segments,
        );
      }
    }
    return await finish(ctx, sum, this.#survivors);
  }
}
