/**
 * Peer phase 1, AdvertiseKeys: joined; waiting for START. The peer checks
 * everything in START itself: the roster's size fits the terms (at most the
 * N = `participants` the layout was computed for, so no total can wrap;
 * T > n/2, minimum contributors, its own floor), its own entry
 * carries exactly the keys it sent, and every participant's certificate
 * (policy "peer", CN = name) and join signature over this session verify —
 * so keys replayed from another session fail. Then it signs the START hash.
 * (A sparse START shows only the peer's window: its size and membership are
 * then the hospital's word; see `#sparse`.)
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
import type { Message, MessageOf, Participant } from "../../wire/messages.ts";
import { fromHex } from "../../crypto/bytes.ts";
import { compareBytes, positionKey, window } from "../graph.ts";
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
    const sparseFields = message.rosterHash !== undefined || message.size !== undefined ||
      roster.some((p) => p.position !== undefined);
    if (ctx.agreed.neighbors !== undefined) return await this.#sparse(message);
    if (sparseFields) {
      return abortSession(ctx, "Cannot run round: a complete-graph START carries sparse fields");
    }
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

  /**
   * A sparse START (docs/protocol.md §18): this peer's window only. The
   * roster's size must fit the terms and this peer's floor; the window must
   * hold exactly the K + 1 positions around this peer's own, each entry's
   * certificate and JOIN signature must verify, and the position keys the
   * claimed START hash gives must increase along the window (one wrap at
   * n − 1 → 0 at most). Then the peer confirms that START hash. What these
   * checks cannot give: the size, the hash and this peer's position are the
   * hospital's word, and for any K + 1 certified parties some position makes
   * their order pass, so they fix the order of the window, not who is in it
   * (review 9; docs/threat-model.md, "Sparse rounds"). The confirmation
   * therefore signs this peer's place (n and position) with the hash, so
   * that its neighbours count it only where their STARTs agree. Keys are compared
   * strictly, though equal keys would take a SHA-256 collision once names
   * are distinct: defence in depth, which no test can reach.
   */
  async #sparse(message: MessageOf<"start">): Promise<PeerState> {
    const ctx = this.ctx;
    const k = ctx.agreed.neighbors!;
    const { participants: entries, rosterHash, size } = message;
    if (rosterHash === undefined || size === undefined) {
      return abortSession(ctx, "Cannot run round: a sparse START lacks its roster hash or size");
    }
    const problem = rosterProblem(ctx.agreed, size);
    if (problem) return abortSession(ctx, `Cannot run round: ${problem}`);
    if (size < ctx.floor) {
      return abortSession(ctx, `${size} participants, below this peer's floor of ${ctx.floor}`);
    }
    const own = entries.find((p) => p.name === ctx.name);
    if (
      !own || own.position === undefined || !bytesEqual(own.sealKey, ctx.keys!.seal.publicKey) ||
      !bytesEqual(own.maskKey, ctx.keys!.mask.publicKey)
    ) {
      return abortSession(ctx, "START does not list this peer with the keys it sent");
    }
    const positions = window(own.position, size, k);
    const names = new Map<number, string>();
    for (const p of entries) {
      if (p.position === undefined || p.position >= size) {
        return abortSession(ctx, `START gives ${p.name} no position in the roster`);
      }
      names.set(p.position, p.name);
    }
    // Distinct names too, not only distinct positions: one colluder listed at
    // every position would otherwise pass (its key equals itself), and count
    // as K confirmations (review 9, F4; the codec refuses repeated names, but
    // this check must not rest on it).
    if (
      entries.length !== positions.length || names.size !== entries.length ||
      new Set(entries.map((p) => p.name)).size !== entries.length ||
      positions.some((q) => !names.has(q))
    ) {
      return abortSession(ctx, "START's neighbourhood is not the window around this peer");
    }
    const failures = await Promise.all(entries.map((p) => this.#check(p)));
    const failed = failures.find((f) => f !== undefined);
    if (failed) return abortSession(ctx, failed);
    const hash = fromHex(rosterHash);
    const keys = await Promise.all(
      positions.map((q) => positionKey(ctx.session, hash, names.get(q)!)),
    );
    for (let i = 0; i + 1 < positions.length; i++) {
      // Sorted by key, so keys rise strictly along the ring except from n − 1 to 0.
      const wraps = positions[i] === size - 1;
      const order = compareBytes(keys[i]!, keys[i + 1]!);
      if (wraps ? order <= 0 : order >= 0) {
        return abortSession(
          ctx,
          `START places ${names.get(positions[i + 1]!)} out of the order its START hash fixes`,
        );
      }
    }
    // A window across the wrap holds the largest keys (up to n − 1), then
    // the smallest (from 0): its last key is below its first. Without this,
    // swapping the first and last of a window that starts at n − 1 or ends
    // at 0 kept every neighbouring pair in order.
    const across = positions.includes(size - 1) && positions.includes(0) &&
      positions.at(-1) !== size - 1;
    if (across && compareBytes(keys.at(-1)!, keys[0]!) >= 0) {
      return abortSession(
        ctx,
        `START places ${names.get(positions[0]!)} out of the order its START hash fixes`,
      );
    }
    ctx.roster = entries;
    entries.forEach((p) => ctx.index.set(p.name, p.position!));
    ctx.sparse = { k, n: size, position: own.position, window: positions, names };
    ctx.startHash = hash;
    const signature = await sign(
      ctx.signingKey,
      "confirm",
      confirmFields(ctx.session, ctx.startHash, { size, position: own.position }),
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
    // This peer's own public keys are never used (it derives with its private
    // keys), and n-of-n rounds seal nothing: neither is imported. Both points
    // were checked above all the same.
    if (p.name === ctx.name) return undefined;
    const [sealKey, maskKey] = await Promise.all([
      ctx.agreed.mode === "threshold" ? importPublicKey(p.sealKey) : undefined,
      importPublicKey(p.maskKey),
    ]);
    if (sealKey) ctx.sealKeys.set(p.name, sealKey);
    ctx.maskKeys.set(p.name, maskKey);
    return undefined;
  }
}
