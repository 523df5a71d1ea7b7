/**
 * Peer phase 0, awaiting INVITE. The peer checks the hospital's certificate
 * (policy "hospital", CN = the expected hospital name — Deno's TLS client
 * cannot show the server certificate, so the name is bound here) and its
 * signature over the session and terms, refuses a session id it has seen
 * before (replay), refuses terms it cannot or will not run (a threshold
 * below its own minimum), asks the runtime for its encoded input, and joins
 * with two fresh ECDH public keys signed over the session.
 *
 * | INVITE ...                                   | decision                    |
 * | -------------------------------------------- | --------------------------- |
 * | certificate or signature does not verify     | aborted (nothing sent: the  |
 * |                                              | sender is not the hospital) |
 * | session seen before                          | refuse                      |
 * | terms invalid, or T below the peer's minimum | refuse                      |
 * | input refused (wrong length or values)       | refuse with the input error |
 * | otherwise                                    | join                        |
 *
 * @module
 */

import { generateSessionKeys } from "../../crypto/agreement.ts";
import { sign, verify } from "../../crypto/signing.ts";
import { isFieldVector } from "../../field.ts";
import { boundOf, elementBounds, parseQuery } from "../../query.ts";
import type { Message } from "../../wire/messages.ts";
import { termsProblem } from "../terms.ts";
import { inviteFields, joinFields, sessionBytes } from "../transcript.ts";
import { AdvertiseKeysState } from "./advertise_keys.ts";
import { PeerAbortedState, PeerState } from "./state.ts";

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
    const problem = termsProblem(terms);
    if (problem) return this.#refuse(`invalid terms: ${problem}`);
    if (terms.mode === "threshold" && terms.threshold < ctx.minThreshold) {
      return this.#refuse(
        `threshold ${terms.threshold} is below this peer's minimum of ${ctx.minThreshold}`,
      );
    }
    ctx.terms = terms;
    ctx.hospitalKey = hospitalKey;
    let x: Float64Array;
    try {
      x = await ctx.input(terms);
    } catch (error) {
      return this.#refuse(`input refused: ${(error as Error).message}`);
    }
    if (x.length !== terms.dimension || !isFieldVector(x)) {
      return this.#refuse(`input refused: not ${terms.dimension} field elements`);
    }
    // The roster check (N × bound < p) only keeps the sum exact if every
    // input is within its bound: checked here too, not left to the caller.
    const query = parseQuery(terms.query, terms.scale);
    const bounds = elementBounds(query, terms.max, terms.maxRows);
    for (let i = 0; i < x.length; i++) {
      // Elements are below p < 2^53, so a bound at or above 2^53 holds them all.
      const bound = boundOf(query, bounds, i);
      if (bound < 2n ** 53n && x[i]! > Number(bound)) {
        return this.#refuse(`input refused: element ${i} is above its bound`);
      }
    }
    ctx.x = Float64Array.from(x);
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

  #refuse(reason: string): PeerState {
    this.ctx.send({ type: "refuse", session: this.ctx.session, reason });
    return this.#fail(`refused the round: ${reason}`);
  }
}
