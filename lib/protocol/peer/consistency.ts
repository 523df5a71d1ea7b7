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
import { consistencyFields, viewFields } from "../transcript.ts";
import { window, windowMembers } from "../graph.ts";
import { acceptDone } from "./masked_input.ts";
import { abortSession, type PeerContext, PeerState } from "./state.ts";
import { UnmaskingState } from "./unmasking.ts";

/**
 * Sparse: whether `name`'s signed view (a bitmap over its window) says, of
 * every position in both its window and this peer's, what this peer's S
 * says: a survivor there iff in S (docs/protocol.md §18).
 */
function viewAgrees(ctx: PeerContext, name: string, view: string): boolean {
  const sparse = ctx.sparse!;
  const theirs = window(ctx.index.get(name)!, sparse.n, sparse.k);
  const members = windowMembers(view, theirs);
  if (members === undefined) return false;
  const marked = new Set(members);
  const mine = new Set(ctx.survivors);
  return theirs.every((q) => {
    const known = sparse.names.get(q);
    return known === undefined || marked.has(q) === mine.has(known);
  });
}

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
    // signed one, by the check above), from distinct members of that set
    // (the decoder refuses repeated names) whose keys this peer holds.
    const fields = consistencyFields(ctx.session, ctx.startHash, message.set);
    const sparse = ctx.sparse !== undefined;
    const candidates = message.signatures.filter(({ name, view }) =>
      message.set.includes(name) && ctx.verifyKeys.has(name) && (view !== undefined) === sparse
    );
    const verifies = ({ name, signature, view }: (typeof candidates)[number]) =>
      verify(
        ctx.verifyKeys.get(name)!,
        signature,
        "consistency",
        view === undefined ? fields : viewFields(ctx.session, ctx.startHash, view),
      );
    // The decision is the one checking every signature gives, with fewer
    // checks: a signed view that contradicts this peer's decides the round if
    // its signature verifies, so each of those is checked; of the rest, only
    // until T verify (a signature past T changes nothing): |S| − T fewer
    // ECDSA verifications per peer, up to 16 with K = 52, T = 37.
    if (sparse) {
      for (const entry of candidates) {
        if (viewAgrees(ctx, entry.name, entry.view!) || !(await verifies(entry))) continue;
        // The hospital told two neighbours different survivors. Reveal nothing.
        return abortSession(ctx, `${entry.name} signed another survivors set than this peer`);
      }
    }
    const t = ctx.agreed.threshold;
    let valid = 0;
    for (const entry of candidates) {
      if (valid >= t) break;
      if (sparse && !viewAgrees(ctx, entry.name, entry.view!)) continue;
      if (await verifies(entry)) valid++;
    }
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
