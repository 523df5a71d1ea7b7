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
    // signed one, by the check above), from distinct members of that set.
    const fields = consistencyFields(ctx.session, ctx.startHash, message.set);
    const checks = await Promise.all(message.signatures.map(async ({ name, signature, view }) => {
      const key = ctx.verifyKeys.get(name);
      if (!message.set.includes(name) || key === undefined) return false;
      if (!ctx.sparse) {
        return view === undefined && await verify(key, signature, "consistency", fields);
      }
      if (view === undefined) return false;
      const viewed = viewFields(ctx.session, ctx.startHash, view);
      if (!(await verify(key, signature, "consistency", viewed))) return false;
      return viewAgrees(ctx, name, view) ? true : name;
    }));
    const disagreeing = checks.find((c): c is string => typeof c === "string");
    if (disagreeing !== undefined) {
      // A signed view that contradicts this peer's: the hospital told two
      // neighbours different survivors. Reveal nothing.
      return abortSession(ctx, `${disagreeing} signed another survivors set than this peer`);
    }
    const valid = checks.filter((c) => c === true).length;
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
