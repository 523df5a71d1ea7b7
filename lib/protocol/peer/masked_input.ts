/**
 * Peer phase 4, MaskedInput: the masked vector y = x + PRG(b) + Σ_{j>i}
 * PRG(s_ij) − Σ_{j<i} PRG(s_ij) (each element modulo its segment's modulus,
 * by the layout) has gone out (n-of-n: no b, j over everyone),
 * as INPUT with its signed digest, and its chunks follow once the hospital
 * sends PROCEED (it admits a bounded number of uploads at a time; when all
 * fit, PROCEED came before this phase and the chunks went with INPUT). n-of-n:
 * waiting for DONE. Threshold: waiting for SURVIVORS, the set S whose inputs the
 * hospital claims to hold. The peer checks S itself before signing it:
 * S ⊆ the holders it masked with, this peer ∈ S, |S| ≥ T, and |S| ≥ its
 * floor (the stricter of its own and the terms' minimum contributors) — so a
 * hospital cannot shrink the sum to a victim and its colluders — and every
 * member's signed INPUT statement, carried in SURVIVORS, verifies and names
 * a partner set holding all of S — so no member of S masked without some
 * other member, and none can be unmasked alone.
 *
 * | message                                      | decision                |
 * | -------------------------------------------- | ----------------------- |
 * | PROCEED, the first                           | send the chunks         |
 * | PROCEED again; SURVIVORS or DONE before      | aborted (an ordering    |
 * |   PROCEED                                    |   rule only)            |
 * | SURVIVORS breaking a rule above              | aborted                 |
 * | SURVIVORS with a member's statement missing, | aborted, naming the     |
 * |   not verifying, or a partner set without    | member                  |
 * |   some member of S                           |                         |
 * | SURVIVORS otherwise                          | sign (session, START    |
 * |                                              | hash, S): consistency   |
 * | DONE (n-of-n) with a valid signature         | done                    |
 * | DONE with a bad signature, or in a threshold | aborted                 |
 * |   round before SURVIVORS                     |                         |
 *
 * @module
 */

import { pairwiseSeed } from "../../crypto/agreement.ts";
import { applyMask, pairSign } from "../../crypto/masks.ts";
import { sign, verify } from "../../crypto/signing.ts";
import { toHex } from "../../encoding.ts";
import { vectorDigest } from "../../crypto/digest.ts";
import { CHUNK_ELEMENTS, type Message, type MessageOf } from "../../wire/messages.ts";
import { bitmapMembers, partnerBitmap } from "../partners.ts";
import { attestedProducts } from "../../crypto/linear_check.ts";
import {
  attestFields,
  consistencyFields,
  doneFields,
  inputFields,
  linearCheckSeed,
  NO_SEED_COMMIT,
  seedCommitment,
  viewFields,
} from "../transcript.ts";
import { fromHex } from "../../crypto/bytes.ts";
import { adjacent, window, windowBitmap, windowMembers } from "../graph.ts";
import { ConsistencyState } from "./consistency.ts";
import { abortSession, type PeerContext, PeerDoneState, PeerState } from "./state.ts";

/**
 * Masks the input with the self seed (threshold) and with every other
 * participant in `neighbours`, sends INPUT (length, digest and the
 * commitment to the self seed, signed), and returns the state waiting for
 * PROCEED and what follows.
 */
export async function sendMaskedInput(
  ctx: PeerContext,
  neighbours: readonly string[],
  selfSeed: Uint8Array | undefined,
): Promise<PeerState> {
  // Masked in place: ctx.x is the array the input callback handed over, the
  // session's own (PeerSessionOptions.input), and nothing reads it after
  // this, so one vector lives, not two: at D = 2^20, 8 MiB less.
  const y = ctx.x;
  ctx.x = new Float64Array(0);
  const { segments } = ctx.agreedLayout;
  if (selfSeed) await applyMask(y, selfSeed, 1, segments);
  const own = ctx.keys!.mask.privateKey;
  const seeds = await Promise.all(
    neighbours.filter((n) => n !== ctx.name).map(async (other) => ({
      other,
      seed: await pairwiseSeed(own, ctx.maskKeys.get(other)!, ctx.sessionBytes, ctx.name, other),
    })),
  );
  for (const { other, seed } of seeds) {
    await applyMask(y, seed, pairSign(ctx.name, other), segments);
  }
  const digest = await vectorDigest(y);
  // Kept for the attestation after DONE: y is fixed by its signed digest.
  ctx.masked = y;
  // The hospital checks the self seed it rebuilds against this commitment:
  // with exactly T revealers nothing else could expose an altered share.
  const seedCommit = selfSeed
    ? await seedCommitment(ctx.session, ctx.name, selfSeed)
    : NO_SEED_COMMIT;
  // Whom it masked with, itself included: every revealer checks that this
  // set holds the whole survivors set before it signs that set.
  const roster = ctx.roster.map((p) => p.name);
  const partners = ctx.sparse
    ? windowBitmap(ctx.sparse.window, new Set([ctx.name, ...neighbours].map(positionOf(ctx))))
    : partnerBitmap(roster, new Set([ctx.name, ...neighbours]));
  const statement = { length: y.length, digest, seedCommit, partners };
  const signature = await sign(
    ctx.signingKey,
    "input",
    inputFields(ctx.session, ctx.startHash, statement),
  );
  ctx.send({ type: "input", session: ctx.session, ...statement, signature });
  // PROCEED came ahead (every upload fits): the chunks go in the same write.
  if (ctx.proceeded) sendChunks(ctx, y);
  return new MaskedInputState(ctx);
}

/** Sends the masked vector y in chunk frames, in order. */
function sendChunks(ctx: PeerContext, y: Float64Array): void {
  for (let index = 0; index * CHUNK_ELEMENTS < y.length; index++) {
    const data = y.subarray(index * CHUNK_ELEMENTS, (index + 1) * CHUNK_ELEMENTS);
    ctx.outbox.sendChunk(ctx.hospitalName, { index, data });
  }
}

/**
 * Checks DONE's signature over (session, START hash, `set`, digest) with the
 * hospital's key, attests ⟨r, y⟩ of this peer's masked vector y for the
 * challenge r those fields fix (docs/protocol.md §8.7), and ends the
 * session. The attestation is what lets a receipt prove the result is the
 * unmasked sum: r did not exist before the hospital signed its result.
 */
export async function acceptDone(
  ctx: PeerContext,
  message: Message,
  set: readonly string[],
): Promise<PeerState> {
  if (message.type !== "done") return abortSession(ctx, `unexpected ${message.type}`);
  // Sparse: DONE signs the digest of a set this peer sees only in its window.
  if ((message.setDigest !== undefined) !== (ctx.sparse !== undefined)) {
    return abortSession(ctx, "DONE's set digest does not fit the round's pairing graph");
  }
  const signed = message.setDigest !== undefined ? fromHex(message.setDigest) : set;
  const fields = doneFields(ctx.session, ctx.startHash, signed, message.resultDigest);
  if (!(await verify(ctx.hospitalKey!, message.signature, "done", fields))) {
    return abortSession(ctx, "the hospital's DONE signature does not verify");
  }
  const seed = await linearCheckSeed(ctx.session, ctx.startHash, signed, message.resultDigest);
  const values = await attestedProducts(seed, ctx.masked, ctx.agreedLayout.segments);
  const attestation = await sign(
    ctx.signingKey,
    "attest",
    attestFields(ctx.session, ctx.startHash, message.resultDigest, values),
  );
  ctx.send({ type: "attest", session: ctx.session, values, signature: attestation });
  ctx.masked = new Float64Array(0);
  ctx.outcome = {
    kind: "done",
    set: [...set],
    resultDigest: message.resultDigest,
    signature: message.signature,
    startHash: toHex(ctx.startHash),
  };
  ctx.log(`session done over ${set.length} participants`);
  return new PeerDoneState(ctx);
}

/**
 * Why this peer must not sign SURVIVORS' set S, judged on the members'
 * signed INPUT statements it carries, or undefined if it may: exactly one
 * statement per member of S, each signed by that member over this session
 * and START hash with length = dimension, each partner set a bitmap for the
 * roster that holds every member of S. Otherwise the pairwise masks between
 * two members need not cancel, and a member whose masks with the rest of S
 * were never added would unmask alone from what S's revealers hand over.
 */
async function statementProblem(
  ctx: PeerContext,
  message: MessageOf<"survivors">,
): Promise<string | undefined> {
  const set = message.set;
  const names = message.inputs.map((s) => s.name);
  if (names.length !== set.length || names.some((n, i) => n !== set[i])) {
    return "the survivors set does not carry one signed input statement per member";
  }
  const roster = ctx.roster.map((p) => p.name);
  const length = ctx.agreedLayout.dimension;
  const verdicts = await Promise.all(message.inputs.map(async (entry) => {
    const partners = ctx.sparse
      ? windowPartners(ctx, entry)
      : bitmapMembers(entry.partners, roster);
    const missing = partners && set.find((n) => !partners.includes(n));
    if (partners === undefined) return `the partner set of ${entry.name} is not a roster bitmap`;
    if (missing !== undefined) {
      return `${entry.name} did not mask with ${missing}, a member of the survivors set`;
    }
    const fields = inputFields(ctx.session, ctx.startHash, { ...entry, length });
    const key = ctx.verifyKeys.get(entry.name)!;
    if (!(await verify(key, entry.signature, "input", fields))) {
      return `the input statement of ${entry.name} does not verify`;
    }
    return undefined;
  }));
  return verdicts.find((v) => v !== undefined);
}

/** The roster position of a participant of this peer's window (sparse rounds). */
function positionOf(ctx: PeerContext): (name: string) => number {
  return (name) => ctx.index.get(name)!;
}

/**
 * Sparse: the partner set of a member m of S as the names this peer knows,
 * or undefined if it is not a bitmap for m's window. Members of S outside
 * this peer's window are not in the list; the check then asks that every
 * member of S in m's window is there, which is every member of S this peer
 * can name (docs/protocol.md §18).
 */
function windowPartners(
  ctx: PeerContext,
  entry: { name: string; partners: string },
): string[] | undefined {
  const view = ctx.sparse!;
  const theirs = window(ctx.index.get(entry.name)!, view.n, view.k);
  const members = windowMembers(entry.partners, theirs);
  if (members === undefined) return undefined;
  const partners = members.flatMap((q) => view.names.get(q) ?? []);
  // Members of S outside m's window need not be m's partners: count them in.
  for (const [q, name] of view.names) {
    if (!adjacent(q, ctx.index.get(entry.name)!, view.n, view.k)) partners.push(name);
  }
  return partners;
}

/** Waiting for PROCEED, then SURVIVORS (threshold) or DONE (n-of-n). */
export class MaskedInputState extends PeerState {
  readonly phase = "input";

  protected async receive(message: Message): Promise<PeerState> {
    const ctx = this.ctx;
    const terms = ctx.agreed;
    if (message.type === "proceed") {
      if (ctx.proceeded) return abortSession(ctx, "a second PROCEED");
      ctx.proceeded = true;
      sendChunks(ctx, ctx.masked);
      return this;
    }
    // An ordering rule, not a protection: this peer signs no set and takes
    // no result before its chunks have gone out. A hospital that sends
    // PROCEED and ignores them is caught, if at all, by the checks below.
    if (!ctx.proceeded) return abortSession(ctx, `${message.type.toUpperCase()} before PROCEED`);
    if (message.type === "done") {
      if (terms.mode !== "nofn") return abortSession(ctx, "DONE before SURVIVORS");
      return await acceptDone(ctx, message, ctx.confirmed);
    }
    if (message.type !== "survivors") return this;
    if (terms.mode === "nofn") return abortSession(ctx, "SURVIVORS in an n-of-n round");
    const set = message.set;
    const outside = set.find((n) => !ctx.holders.includes(n));
    if (outside !== undefined) {
      return abortSession(
        ctx,
        `the survivors set lists ${outside}, who did not share keys with this peer`,
      );
    }
    if (!set.includes(ctx.name)) return abortSession(ctx, "the survivors set leaves this peer out");
    if (set.length < terms.threshold) {
      return abortSession(
        ctx,
        `the survivors set has ${set.length} members, below T = ${terms.threshold}`,
      );
    }
    if (!ctx.sparse && set.length < ctx.floor) {
      return abortSession(
        ctx,
        `the survivors set has ${set.length} members, below this peer's floor of ${ctx.floor}`,
      );
    }
    const problem = await statementProblem(ctx, message);
    if (problem !== undefined) return abortSession(ctx, problem);
    ctx.survivors = [...set];
    // Sparse: the signed statement is this peer's view of S, its window bitmap.
    const fields = ctx.sparse
      ? viewFields(
        ctx.session,
        ctx.startHash,
        windowBitmap(ctx.sparse.window, new Set(set.map(positionOf(ctx)))),
      )
      : consistencyFields(ctx.session, ctx.startHash, set);
    const signature = await sign(ctx.signingKey, "consistency", fields);
    ctx.send({ type: "consistency", session: ctx.session, signature });
    return new ConsistencyState(ctx);
  }
}
