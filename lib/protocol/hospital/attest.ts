/**
 * Hospital phase 6, Attest: DONE has gone out with the signed digest of the
 * result; each survivor answers ATTEST, ⟨r, y⟩ of the masked vector y it
 * sent, per segment, for the challenge r = PRG(linearCheckSeed) that DONE's
 * fields fix (docs/protocol.md §8.7), signed. The hospital keeps each one
 * that verifies for the receipt, which can then prove the result is the
 * unmasked sum of the survivors' inputs.
 *
 * The result is out already, so nothing here can fail the round: the
 * hospital sends nothing more to anyone (§11.2), a party that leaves, aborts
 * or sends a bad attestation is just not counted, and the phase ends when
 * every live survivor has answered or at its deadline. A receipt without
 * some survivor's attestation says that the result is not proven.
 *
 * | event from a member of the set                   | decision            |
 * | ------------------------------------------------ | ------------------- |
 * | attest: two values per segment (one per        | recorded            |
 * |   challenge), each below its modulus, signed     |                     |
 * | attest otherwise                                 | not counted, logged |
 * | a second attest                                  | ignored             |
 * | abort, disconnect, anything unexpected           | not counted         |
 * | anything from a non-member                       | ignored             |
 * | timeout, or every live member answered           | done                |
 *
 * @module
 */

import { Awaited } from "./awaited.ts";
import { isAttestedShape } from "../../crypto/linear_check.ts";
import { verify } from "../../crypto/signing.ts";
import { toHex } from "../../encoding.ts";
import type { Attestation, RoundEvidence } from "../evidence.ts";
import type { Chunk, Message } from "../../wire/messages.ts";
import { attestFields } from "../transcript.ts";
import { DoneState, type HospitalContext, HospitalState } from "./state.ts";

/** What DONE published, kept until the attestations are in. */
export interface Published {
  result: Float64Array;
  set: readonly string[];
  resultDigest: string;
  doneSignature: Uint8Array;
}

/** Collecting ATTEST after DONE. */
export class AttestState extends HospitalState {
  readonly phase = "attest";
  #published: Published;
  #attested = new Map<string, Attestation>();
  /** Members that will not attest: gone, aborted, or sent one that did not verify. */
  #out = new Set<string>();
  readonly #awaited: Awaited;

  constructor(ctx: HospitalContext, published: Published) {
    super(ctx);
    this.#published = published;
    this.#awaited = new Awaited(published.set);
  }

  /** Ends at once if no live member is left to attest. */
  open(): Promise<HospitalState> {
    return this.settle();
  }

  protected override member(name: string): boolean {
    return this.#published.set.includes(name);
  }

  protected async collect(from: string, message: Message): Promise<HospitalState> {
    if (message.type !== "attest") return this;
    if (this.#attested.has(from) || this.#out.has(from)) {
      this.ctx.log(`ignored a second attest from ${from}`);
      return this;
    }
    const segments = this.ctx.layout.segments;
    const { values, signature } = message;
    const shaped = isAttestedShape(values, segments);
    const fields = attestFields(
      this.ctx.session,
      this.ctx.startHash,
      this.#published.resultDigest,
      values,
    );
    if (!shaped || !(await verify(this.ctx.verifyKeys.get(from)!, signature, "attest", fields))) {
      return await this.lost(from, "its attestation does not verify");
    }
    this.#attested.set(from, { name: from, values: [...values], signature });
    return await this.settle();
  }

  override chunk(from: string, _chunk: Chunk): Promise<HospitalState> {
    if (!this.member(from) || !this.ctx.live(from)) return Promise.resolve(this);
    return this.lost(from, "unexpected chunk after DONE");
  }

  /** After DONE nobody is dropped or sent `abort`: the member is just not counted. */
  protected override async lost(name: string, reason: string): Promise<HospitalState> {
    if (!this.#out.has(name) && !this.#attested.has(name)) {
      this.#out.add(name);
      this.ctx.log(`no attestation from ${name}: ${reason}`);
    }
    return await this.settle();
  }

  protected waiting(): boolean {
    return this.#awaited.any((n) =>
      this.ctx.live(n) && !this.#attested.has(n) && !this.#out.has(n)
    );
  }

  timeout(): Promise<HospitalState> {
    const ctx = this.ctx;
    const { result, set, resultDigest, doneSignature } = this.#published;
    const attestations = set.flatMap((n) => this.#attested.get(n) ?? []);
    const evidence: RoundEvidence = {
      session: ctx.session,
      terms: ctx.terms,
      hospital: { name: ctx.name, cert: ctx.certPem },
      inviteSignature: ctx.signed.invite,
      roster: ctx.roster,
      startHash: ctx.startHash,
      confirmations: ctx.signed.confirmations,
      inputs: set.map((name) => ctx.signed.inputs.get(name)!),
      set: [...set],
      consistency: ctx.signed.consistency,
      resultDigest,
      doneSignature,
      attestations,
      selfSeeds: ctx.signed.selfSeeds,
      maskSecrets: ctx.signed.maskSecrets,
    };
    ctx.outcome = {
      kind: "done",
      result,
      layout: ctx.layout,
      set: [...set],
      resultDigest,
      evidence,
      startHash: toHex(ctx.startHash),
    };
    ctx.log(`${attestations.length} of ${set.length} survivors attested the result`);
    return Promise.resolve(new DoneState(ctx));
  }
}
