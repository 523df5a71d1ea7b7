/**
 * Peer phase 2, Confirm: confirmed START; waiting for CONFIRMATIONS. The
 * peer goes on only with the participants whose signature over this exact
 * START hash verifies (itself included) — a hospital that showed someone
 * another roster, or replayed keys, gets no valid confirmation from them.
 * n-of-n: every participant must have confirmed; then the masked input goes
 * out. Threshold: at least T and the floor must have; then the peer shares
 * its mask key and a fresh self seed among them, each share sealed to its
 * recipient.
 *
 * | CONFIRMATIONS ...                              | decision                  |
 * | ---------------------------------------------- | ------------------------- |
 * | an entry that does not verify (sparse: over    | left out (logged)         |
 * |   this peer's n and the position its START     |                           |
 * |   gives the signer), or for a name not in the  |                           |
 * |   roster                                       |                           |
 * | n-of-n: not all verify                         | aborted                   |
 * | threshold: fewer than max(T, floor) verify     | aborted                   |
 * | otherwise                                      | input / sealed shares     |
 *
 * @module
 */

import { preparePairwiseSeeds, sealingKey } from "../../crypto/agreement.ts";
import { exportScalar } from "../../crypto/mask_key.ts";
import { sealShares } from "../../crypto/seal.ts";
import { splitSecret } from "../../crypto/secret_sharing.ts";
import { verify } from "../../crypto/signing.ts";
import { randomSeed } from "../../prg.ts";
import type { Message } from "../../wire/messages.ts";
import { confirmFields } from "../transcript.ts";
import { sendMaskedInput } from "./masked_input.ts";
import { ShareKeysState } from "./share_keys.ts";
import { abortSession, PeerState } from "./state.ts";

/** Waiting for CONFIRMATIONS. */
export class ConfirmState extends PeerState {
  readonly phase = "confirm";

  /**
   * Derives, while the hospital gathers the confirmations, what the next
   * steps need for every other participant, which is almost always everyone:
   * threshold rounds, the sealing ECDH (to seal shares to each who confirms);
   * all rounds, the pairwise seeds (to mask with each who confirms and, in
   * threshold rounds, shares).
   */
  override prepare(): void {
    const ctx = this.ctx;
    if (ctx.agreed.mode === "threshold") {
      // Sealing shares needs one ECDH per participant who confirms.
      for (const name of ctx.sealKeys.keys()) ctx.sealSecret(name).catch(() => {});
    }
    preparePairwiseSeeds(ctx.keys!.mask.privateKey, ctx.maskKeys, ctx.sessionBytes, ctx.name);
  }

  protected async receive(message: Message): Promise<PeerState> {
    if (message.type !== "confirmations") return this;
    const ctx = this.ctx;
    const valid = new Set([ctx.name]);
    await Promise.all(message.confirmations.map(async ({ name, signature }) => {
      if (name === ctx.name) return;
      const key = ctx.verifyKeys.get(name);
      const position = ctx.index.get(name);
      // Sparse: the neighbour must have signed the n and the position this
      // peer's START gives it (§18.3), not only the hash.
      const fields = position === undefined ? undefined : confirmFields(
        ctx.session,
        ctx.startHash,
        ctx.sparse ? { size: ctx.sparse.n, position } : undefined,
      );
      if (key && fields && await verify(key, signature, "confirm", fields)) valid.add(name);
      else ctx.log(`left out ${name}: its confirmation does not verify`);
    }));
    ctx.confirmed = ctx.roster.map((p) => p.name).filter((n) => valid.has(n));
    const terms = ctx.agreed;
    if (terms.mode === "nofn") {
      if (ctx.confirmed.length !== ctx.roster.length) {
        return abortSession(
          ctx,
          `${ctx.roster.length - ctx.confirmed.length} participants did not confirm this roster`,
        );
      }
      return await sendMaskedInput(ctx, ctx.confirmed, undefined);
    }
    const floor = ctx.phaseFloor;
    if (ctx.confirmed.length < floor) {
      return abortSession(
        ctx,
        `${ctx.confirmed.length} participants confirmed this roster; ${floor} are needed`,
      );
    }
    return await this.#share();
  }

  /** Shamir-shares the mask scalar and a fresh self seed among the confirmed, sealed. */
  async #share(): Promise<PeerState> {
    const ctx = this.ctx;
    const keys = ctx.keys!;
    const xs = ctx.confirmed.map((n) => ctx.index.get(n)! + 1);
    const t = ctx.agreed.threshold;
    const selfSeed = randomSeed();
    const maskShares = splitSecret(await exportScalar(keys.mask.privateKey), xs, t);
    const selfShares = splitSecret(selfSeed, xs, t);
    const shares = await Promise.all(ctx.confirmed.map(async (to, k) => {
      const pair = { mask: maskShares[k]!.words, self: selfShares[k]!.words };
      if (to === ctx.name) {
        ctx.shares.set(to, pair);
        return undefined;
      }
      const key = await sealingKey(await ctx.sealSecret(to), ctx.sessionBytes, ctx.name, to);
      return { to, sealed: await sealShares(key, ctx.sessionBytes, ctx.name, to, pair) };
    }));
    ctx.send({
      type: "sealed",
      session: ctx.session,
      shares: shares.filter((s) => s !== undefined),
    });
    return new ShareKeysState(ctx, selfSeed);
  }
}
