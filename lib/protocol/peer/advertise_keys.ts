/**
 * Peer phase 1, AdvertiseKeys: joined; waiting for START. The peer checks
 * everything in START itself: the roster's size fits the terms (at most the
 * N = `participants` the layout was computed for, so no total can wrap;
 * T > n/2, minimum contributors, its own floor), its own entry
 * carries exactly the keys it sent, and every participant's certificate
 * (policy "peer", CN = name) and join signature over this session verify —
 * so keys replayed from another session fail. Then it signs the START hash.
 *
 * | START ...                                    | decision                 |
 * | -------------------------------------------- | ------------------------ |
 * | roster larger than N, or too small/large for | aborted                  |
 * |   the terms or the floor                     |                          |
 * | this peer missing, or with other keys        | aborted                  |
 * | a certificate, signature or key fails        | aborted, naming whose    |
 * | otherwise                                    | confirm                  |
 *
 * @module
 */

import { importPublicKey, isPublicKey } from "../../crypto/agreement.ts";
import { bytesEqual } from "../../crypto/bytes.ts";
import { sign, verify } from "../../crypto/signing.ts";
import type { Message, Participant } from "../../wire/messages.ts";
import { rosterProblem } from "../terms.ts";
import { confirmFields, joinFields, startHash } from "../transcript.ts";
import { ConfirmState } from "./confirm.ts";
import { abortSession, PeerState } from "./state.ts";

/** Waiting for START. */
export class AdvertiseKeysState extends PeerState {
  readonly phase = "join";

  protected async receive(message: Message): Promise<PeerState> {
    if (message.type !== "start") return this;
    const ctx = this.ctx;
    const roster = message.participants;
    const problem = rosterProblem(ctx.agreed, roster.length);
    if (problem) return abortSession(ctx, `Cannot run round: ${problem}`);
    if (ctx.agreed.mode === "nofn" && roster.length !== ctx.agreed.participants) {
      // n-of-n: the sum covers all N the hospital signed for, never a subset it chose to show.
      return abortSession(
        ctx,
        `Cannot run round: an n-of-n round's roster has ${roster.length} participants; ` +
          `its signed terms say ${ctx.agreed.participants}`,
      );
    }
    if (roster.length < ctx.floor) {
      return abortSession(
        ctx,
        `${roster.length} participants, below this peer's floor of ${ctx.floor}`,
      );
    }
    const own = roster.find((p) => p.name === ctx.name);
    if (
      !own || !bytesEqual(own.sealKey, ctx.keys!.seal.publicKey) ||
      !bytesEqual(own.maskKey, ctx.keys!.mask.publicKey)
    ) {
      return abortSession(ctx, "START does not list this peer with the keys it sent");
    }
    const failures = await Promise.all(roster.map((p) => this.#check(p)));
    const failed = failures.find((f) => f !== undefined);
    if (failed) return abortSession(ctx, failed);
    ctx.roster = roster;
    roster.forEach((p, i) => ctx.index.set(p.name, i));
    ctx.startHash = await startHash(ctx.session, ctx.agreed, roster);
    const signature = await sign(
      ctx.signingKey,
      "confirm",
      confirmFields(ctx.session, ctx.startHash),
    );
    ctx.send({ type: "confirm", session: ctx.session, signature });
    return new ConfirmState(ctx);
  }

  /** Checks one participant's certificate, join signature and keys; why not, or undefined. */
  async #check(p: Participant): Promise<string | undefined> {
    const ctx = this.ctx;
    let key: CryptoKey;
    try {
      key = await ctx.verifyParty(p.cert, p.name, "peer");
    } catch {
      return `the certificate of ${p.name} is refused`;
    }
    const fields = joinFields(ctx.session, p.name, p.sealKey, p.maskKey);
    if (!(await verify(key, p.signature, "join", fields))) {
      return `the join signature of ${p.name} does not verify for this session`;
    }
    if (!isPublicKey(p.sealKey) || !isPublicKey(p.maskKey)) {
      return `a key of ${p.name} is not a P-256 point`;
    }
    ctx.verifyKeys.set(p.name, key);
    ctx.sealKeys.set(p.name, await importPublicKey(p.sealKey));
    ctx.maskKeys.set(p.name, await importPublicKey(p.maskKey));
    return undefined;
  }
}
