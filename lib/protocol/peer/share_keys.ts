/**
 * Peer phase 3, ShareKeys (threshold rounds): sent its sealed shares;
 * waiting for SHARES, the sealed shares the other participants sent it. Each
 * must come from a confirmed participant and open under the key from ECDH of
 * the two sealing keys with (session, sender, recipient) as associated data;
 * one that does not open aborts the round naming the sender. The peer then
 * masks only with the participants whose shares it holds (U2).
 *
 * | SHARES ...                                   | decision                  |
 * | -------------------------------------------- | ------------------------- |
 * | from a name not confirmed, or from itself    | aborted                   |
 * | a share that does not open                   | aborted, naming the sender|
 * | fewer than max(T, floor) holders             | aborted                   |
 * | otherwise                                    | masked input              |
 *
 * @module
 */

import { preparePairwiseSeeds, sealingKey } from "../../crypto/agreement.ts";
import { openShares, type SharePair } from "../../crypto/seal.ts";
import type { Message } from "../../wire/messages.ts";
import { sendMaskedInput } from "./masked_input.ts";
import { abortSession, type PeerContext, PeerState } from "./state.ts";

/** Waiting for SHARES. */
export class ShareKeysState extends PeerState {
  readonly phase = "share";
  #selfSeed: Uint8Array;

  constructor(ctx: PeerContext, selfSeed: Uint8Array) {
    super(ctx);
    this.#selfSeed = selfSeed;
  }

  /** As in ConfirmState: seeds not derived yet are started (the rest are found done). */
  override prepare(): void {
    preparePairwiseSeeds(
      this.ctx.keys!.mask.privateKey,
      this.ctx.maskKeys,
      this.ctx.sessionBytes,
      this.ctx.name,
    );
  }

  protected async receive(message: Message): Promise<PeerState> {
    if (message.type !== "shares") return this;
    const ctx = this.ctx;
    for (const { from } of message.shares) {
      if (from === ctx.name || !ctx.confirmed.includes(from)) {
        return abortSession(ctx, `SHARES holds a share from ${from}, not a confirmed participant`);
      }
    }
    const opened = await Promise.all(message.shares.map(async ({ from, sealed }) => {
      const key = await sealingKey(await ctx.sealSecret(from), ctx.sessionBytes, from, ctx.name);
      try {
        return await openShares(key, ctx.sessionBytes, from, ctx.name, sealed);
      } catch {
        return from;
      }
    }));
    const bad = opened.find((o): o is string => typeof o === "string");
    if (bad !== undefined) return abortSession(ctx, `the share from ${bad} does not open`);
    message.shares.forEach(({ from }, k) => ctx.shares.set(from, opened[k] as SharePair));
    ctx.holders = ctx.roster.map((p) => p.name).filter((n) => ctx.shares.has(n));
    const floor = ctx.phaseFloor;
    if (ctx.holders.length < floor) {
      return abortSession(
        ctx,
        `${ctx.holders.length} participants shared keys; ${floor} are needed`,
      );
    }
    return await sendMaskedInput(ctx, ctx.holders, this.#selfSeed);
  }
}
