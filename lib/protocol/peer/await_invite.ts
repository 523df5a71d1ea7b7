/**
 * Peer phase 0, awaiting INVITE. The peer checks the hospital's certificate
 * (policy "hospital", CN = the expected hospital name — Deno's TLS client
 * cannot show the server certificate, so the name is bound here) and its
 * signature over the session and terms, refuses a session id it has seen
 * before (replay), refuses terms it cannot or will not run (a dimension
 * other than the vector layout it computes from the terms, a layout that
 * cannot be represented, a threshold below its own minimum), asks the
 * runtime for its input encoded by that layout, checks it against the
 * layout, and joins with two fresh ECDH public keys signed over the session.
 *
 * | INVITE ...                                   | decision                    |
 * | -------------------------------------------- | --------------------------- |
 * | certificate or signature does not verify     | aborted (nothing sent: the  |
 * |                                              | sender is not the hospital) |
 * | session seen before                          | refuse                      |
 * | terms invalid (dimension ≠ layout's, not     | refuse                      |
 * |   representable, …), T below the minimum     |                             |
 * | input refused, or not fitting the layout     | refuse, saying only "input  |
 * |   (length, segment moduli, element bounds)   | refused" (the detail stays  |
 * |                                              | in the local log)           |
 * | otherwise                                    | join                        |
 *
 * Why an input was refused is about the data ("line 2: outside [0, R]"
 * says what line 2 holds; "N rows, more than the limit" gives the row
 * count), so the hospital hears one fixed reason, {@linkcode INPUT_REFUSED},
 * and the detail goes to this peer's own log only. A runtime whose refusal
 * says nothing about the data (an agent's "refused by policy") throws a
 * {@linkcode StatedRefusal}, whose message is sent as it is.
 *
 * @module
 */

import { generateSessionKeys } from "../../crypto/agreement.ts";
import { sign, verify } from "../../crypto/signing.ts";
import { isSegmentedFieldVector } from "../../field.ts";
import { elementBound, type Layout } from "../../query.ts";
import type { Message } from "../../wire/messages.ts";
import { fitReason } from "../../wire/messages.ts";
import { shapeOf } from "../terms.ts";
import { inviteFields, joinFields, sessionBytes } from "../transcript.ts";
import { AdvertiseKeysState } from "./advertise_keys.ts";
import { PeerAbortedState, PeerState } from "./state.ts";

/** What the hospital hears about any input refused for what it holds. */
export const INPUT_REFUSED = "input refused: the input does not fit the round's terms";

/**
 * An input refusal whose message is a fixed text that says nothing about
 * the data, so it may go to the hospital as it is ("input refused: MESSAGE").
 */
export class StatedRefusal extends Error {
  override name = "StatedRefusal";
}

/**
 * Why an encoded input does not fit the layout, or undefined: it must have
 * the layout's length, every element canonical for its segment (a whole
 * number below that segment's modulus), and every element at most its
 * per-element bound (lib/query.ts `elementBound`: B for a fast-path total,
 * so N inputs cannot wrap p1; the modulus less one for a residue). The layout
 * keeps the sum exact only if every input is within these bounds, so they
 * are checked here too, not left to the caller. Names the element, never
 * its value.
 */
function inputProblem(x: Float64Array, layout: Layout): string | undefined {
  if (x.length !== layout.dimension) {
    return `it has ${x.length} elements; the round's layout has ${layout.dimension}`;
  }
  if (!isSegmentedFieldVector(x, layout.segments)) {
    return "an element is not a whole number below its segment's modulus";
  }
  // Each run of one component's residue j shares one bound.
  for (const { count, residues, start } of layout.components) {
    for (let j = 0; j < residues; j++) {
      const from = start + j * count;
      const bound = elementBound(layout, from);
      // Elements are below 2^52, so a bound at or above 2^53 holds them all.
      if (bound >= 2n ** 53n) continue;
      const limit = Number(bound);
      for (let i = from; i < from + count; i++) {
        if (x[i]! > limit) return `element ${i} is above its bound`;
      }
    }
  }
  return undefined;
}

/** Waiting for INVITE. */
export class AwaitInviteState extends PeerState {
  readonly phase = "invite";

  protected async receive(message: Message): Promise<PeerState> {
    if (message.type !== "invite") return this;
    const ctx = this.ctx;
    let hospitalKey: CryptoKey;
    try {
      hospitalKey = await ctx.verifyParty(message.hospitalCert, ctx.hospitalName, "hospital");
    } catch (error) {
      return this.#fail(`the hospital's certificate is refused: ${(error as Error).message}`);
    }
    const fields = inviteFields(message.session, message.terms);
    if (!(await verify(hospitalKey, message.signature, "invite", fields))) {
      return this.#fail("the invite's signature does not verify");
    }
    ctx.session = message.session;
    ctx.sessionBytes = sessionBytes(message.session);
    if (!(await ctx.claimSession(message.session))) {
      return this.#refuse("session id seen before (a replayed invite)");
    }
    const terms = message.terms;
    // The layout is recomputed here from the signed terms, never taken from
    // the hospital: terms whose dimension is not that layout's are refused.
    const shape = shapeOf(terms);
    if (typeof shape === "string") return this.#refuse(`invalid terms: ${shape}`);
    if (terms.mode === "threshold" && terms.threshold < ctx.minThreshold) {
      return this.#refuse(
        `threshold ${terms.threshold} is below this peer's minimum of ${ctx.minThreshold}`,
      );
    }
    const { layout } = shape;
    ctx.terms = terms;
    ctx.layout = layout;
    ctx.hospitalKey = hospitalKey;
    let x: Float64Array;
    try {
      x = await ctx.input(terms, layout);
    } catch (error) {
      const detail = `input refused: ${(error as Error).message}`;
      return this.#refuse(error instanceof StatedRefusal ? detail : INPUT_REFUSED, detail);
    }
    const problem = inputProblem(x, layout);
    if (problem) return this.#refuse(INPUT_REFUSED, `input refused: ${problem}`);
    // The session's own from now on (PeerSessionOptions.input): it is masked
    // in place, so one vector lives, not two (at D = 2^20, 8 MiB less).
    ctx.x = x;
    ctx.keys = await generateSessionKeys();
    const { seal, mask } = ctx.keys;
    const signature = await sign(
      ctx.signingKey,
      "join",
      joinFields(ctx.session, ctx.name, seal.publicKey, mask.publicKey),
    );
    ctx.send({
      type: "join",
      session: ctx.session,
      sealKey: seal.publicKey,
      maskKey: mask.publicKey,
      signature,
    });
    return new AdvertiseKeysState(ctx);
  }

  #fail(reason: string): PeerState {
    this.ctx.log(`session aborted: ${reason}`);
    this.ctx.outcome = { kind: "aborted", reason };
    return new PeerAbortedState(this.ctx);
  }

  /** Sends REFUSE with `sent`; `detail` (default: the same) goes to the local log only. */
  #refuse(sent: string, detail = sent): PeerState {
    this.ctx.send({ type: "refuse", session: this.ctx.session, reason: fitReason(sent) });
    return this.#fail(`refused the round: ${detail}`);
  }
}
