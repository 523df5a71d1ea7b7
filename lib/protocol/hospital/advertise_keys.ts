/**
 * Hospital phase 0, AdvertiseKeys (fcp/secagg R0): INVITE has gone to every
 * invitee; collect each one's JOIN (two fresh ECDH public keys, signed by its
 * certificate key over the session) or REFUSE, until all have answered or
 * the deadline passes. Then fix the roster (the joined, sorted by name),
 * check it can run the terms, and send START to every participant.
 *
 * | event from an invitee                  | decision                              |
 * | -------------------------------------- | ------------------------------------- |
 * | join, signature and keys valid         | joins the roster                      |
 * | join with a bad signature or key point | not in the roster (sent abort)        |
 * | refuse, abort, disconnect              | not in the roster                     |
 * | a second join                          | violation: not in the roster          |
 * | timeout, or everyone answered          | START with the joined, or abort when  |
 * |                                        | the roster breaks a rule of the terms |
 *
 * @module
 */

import { Awaited } from "./awaited.ts";
import { escapeControls } from "../../errors.ts";
import { isPublicKey } from "../../crypto/agreement.ts";
import { sign, verify } from "../../crypto/signing.ts";
import type { Message, Participant } from "../../wire/messages.ts";
import { rosterProblem } from "../terms.ts";
import { inviteFields, joinFields, startHash } from "../transcript.ts";
import { ConfirmState } from "./confirm.ts";
import { abortRound, type HospitalContext, HospitalState, SparseGraph } from "./state.ts";
import { permutation } from "../graph.ts";
import { toHex } from "../../encoding.ts";

/** Sends INVITE to every invitee and returns the state collecting their answers. */
export async function inviteAll(ctx: HospitalContext): Promise<HospitalState> {
  const signature = await sign(ctx.signingKey, "invite", inviteFields(ctx.session, ctx.terms));
  ctx.signed.invite = signature;
  for (const name of ctx.invitees.keys()) {
    ctx.send(name, {
      type: "invite",
      session: ctx.session,
      hospitalCert: ctx.certPem,
      terms: ctx.terms,
      signature,
    });
  }
  return new AdvertiseKeysState(ctx);
}

/**
 * Sparse START (docs/protocol.md §18): permute the roster by the position
 * keys startHash fixes, and send each participant only its window — its K
 * neighbours' entries and its own, each with its position — with the START
 * hash of the whole roster and its size.
 */
async function startSparse(ctx: HospitalContext, k: number): Promise<HospitalState> {
  const order = await permutation(ctx.session, ctx.startHash, ctx.roster.map((p) => p.name));
  const graph = new SparseGraph(order, k);
  ctx.graph = graph;
  order.forEach((name, q) => ctx.index.set(name, q));
  const rosterHash = toHex(ctx.startHash);
  // One entry object per participant, shared by the K + 1 windows it is in,
  // so the encoder writes its text once (lib/wire/messages.ts).
  const positioned = new Map<string, Participant>();
  for (const [name, entry] of ctx.entries) {
    positioned.set(name, { ...entry, position: graph.position(name) });
  }
  for (const p of ctx.roster) {
    const participants = graph.sortedNeighbourhood(p.name).map((name) => positioned.get(name)!);
    ctx.send(p.name, {
      type: "start",
      session: ctx.session,
      participants,
      rosterHash,
      size: order.length,
    });
  }
  return new ConfirmState(ctx);
}

/** Collecting JOIN / REFUSE. */
export class AdvertiseKeysState extends HospitalState {
  readonly phase = "advertise";
  #joined = new Map<string, Participant>();
  #answered = new Set<string>();
  readonly #awaited = new Awaited([...this.ctx.invitees.keys()]);

  protected override member(name: string): boolean {
    return this.ctx.invitees.has(name);
  }

  protected async collect(from: string, message: Message): Promise<HospitalState> {
    if (this.#answered.has(from)) return await this.lost(from, `second ${message.type}`);
    this.#answered.add(from);
    if (message.type === "refuse") {
      this.ctx.dropped.add(from);
      // The peer's own words: cut, then every control character escaped (review 18).
      this.ctx.log(`${from} refused: "${escapeControls(message.reason.slice(0, 100))}"`);
      return await this.settle();
    }
    if (message.type !== "join") return this;
    const cert = this.ctx.invitees.get(from)!;
    let key: CryptoKey;
    try {
      key = await this.ctx.verifyParty(cert, from, "peer");
    } catch (error) {
      return await this.lost(from, `its certificate is refused: ${(error as Error).message}`);
    }
    const fields = joinFields(this.ctx.session, from, message.sealKey, message.maskKey);
    if (!(await verify(key, message.signature, "join", fields))) {
      return await this.lost(from, "its join signature does not verify");
    }
    if (!isPublicKey(message.sealKey) || !isPublicKey(message.maskKey)) {
      return await this.lost(from, "a join key is not a P-256 point");
    }
    this.ctx.verifyKeys.set(from, key);
    this.#joined.set(from, {
      name: from,
      cert,
      sealKey: message.sealKey,
      maskKey: message.maskKey,
      signature: message.signature,
    });
    return await this.settle();
  }

  protected waiting(): boolean {
    return this.#awaited.any((n) => this.ctx.live(n) && !this.#answered.has(n));
  }

  async timeout(): Promise<HospitalState> {
    const ctx = this.ctx;
    const roster = [...this.#joined.values()]
      .filter((p) => ctx.live(p.name))
      .sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const name of ctx.invitees.keys()) {
      if (ctx.live(name) && !this.#joined.has(name)) ctx.drop(name, "no join by the deadline");
    }
    if (!ctx.threshold && roster.length < ctx.invitees.size) {
      // n-of-n: every invited peer's input counts, or there is no result.
      const missing = [...ctx.invitees.keys()].filter((n) => !roster.some((p) => p.name === n));
      return abortRound(
        ctx,
        `Cannot start round: an n-of-n round needs every invited peer; ${
          missing.join(", ")
        } did not join`,
      );
    }
    const problem = rosterProblem(ctx.terms, roster.length);
    if (problem) return abortRound(ctx, `Cannot start round: ${problem}`);
    ctx.roster = roster;
    roster.forEach((p, i) => ctx.index.set(p.name, i));
    roster.forEach((p) => ctx.entries.set(p.name, p));
    ctx.startHash = await startHash(ctx.session, ctx.terms, roster);
    if (ctx.terms.neighbors !== undefined) return await startSparse(ctx, ctx.terms.neighbors);
    for (const p of roster) {
      ctx.send(p.name, { type: "start", session: ctx.session, participants: roster });
    }
    return new ConfirmState(ctx);
  }
}
