/**
 * Peer phase 5, Consistency (threshold rounds): signed the survivors set S;
 * waiting for UNMASK. The peer reveals only if UNMASK carries exactly the S
 * it signed and at least T valid signatures on that S from distinct members
 * of S — with T > N/2, no other set can gather T signatures from honest
 * peers, so the hospital cannot learn a value by unmasking two different
 * sets. It reveals once (a later UNMASK is late and ignored), and per holder
 * j exactly one share: j's self-seed share if j ∈ S, j's mask-key share if
 * not — never both.
 *
 * | message                                        | decision               |
 * | ---------------------------------------------- | ---------------------- |
 * | UNMASK with another set                        | aborted, nothing shown |
 * | UNMASK with fewer than T valid signatures      | aborted, nothing shown |
 * | UNMASK otherwise                               | reveal                 |
 * | DONE with a valid signature over S             | done (this peer did not|
 * |                                                | sign in time)          |
 *
 * @module
 */

import { verify } from "../../crypto/signing.ts";
import type { Message } from "../../wire/messages.ts";
import { consistencyFields } from "../transcript.ts";
import { acceptDone } from "./masked_input.ts";
import { abortSession, PeerState } from "./state.ts";
import { UnmaskingState } from "./unmasking.ts";

/** Waiting for UNMASK. */
export class ConsistencyState extends PeerState {
  readonly phase = "consistency";

  protected async receive(message: Message): Promise<PeerState> {
    const ctx = this.ctx;
    if (message.type === "done") return await acceptDone(ctx, message, ctx.survivors);
    if (message.type !== "unmask") return this;
    const set = ctx.survivors;
    if (message.set.length !== set.length || message.set.some((n, i) => n !== set[i])) {
      return abortSession(ctx, "UNMASK names another set than the survivors set this peer signed");
    }
    // Signatures are checked over the set UNMASK names (the same as the
    // signed one, by the check above), from distinct members of that set.
    const fields = consistencyFields(ctx.session, ctx.startHash, message.set);
    const checks = await Promise.all(message.signatures.map(async ({ name, signature }) => {
      const key = ctx.verifyKeys.get(name);
      return message.set.includes(name) && key !== undefined &&
        await verify(key, signature, "consistency", fields);
    }));
    const valid = checks.filter(Boolean).length;
    const t = ctx.agreed.threshold;
    if (valid < t) {
      return abortSession(
        ctx,
        `UNMASK carries ${valid} valid signatures on the set; ${t} are needed`,
      );
    }
    const shares = ctx.holders.map((of) => {
      const pair = ctx.shares.get(of)!;
      return message.set.includes(of)
        ? { of, kind: "self" as const, share: pair.self }
        : { of, kind: "mask" as const, share: pair.mask };
    });
    ctx.send({ type: "reveal", session: ctx.session, shares });
    return new UnmaskingState(ctx);
  }
}
