/**
 * Hospital phase 3, MaskedInput (fcp/secagg R2): each participant still in
 * (n-of-n: all; threshold: U2, who shared keys) sends INPUT — length and
 * digest of its masked vector, signed — then, once the hospital has sent it
 * PROCEED, the vector in chunk frames, in order. A complete vector whose
 * digest matches is added to the running sum at once; a partial vector is
 * kept until complete.
 *
 * PROCEED admits a bounded number of uploads at a time (`ctx.uploads`), in
 * the order their INPUTs arrived: a half-received vector cannot go into the
 * sum (its sender may still be lost), so unbounded it would be one vector
 * per peer (1,000 × 2^16 elements: 400 MiB). When every expected peer fits
 * (every round of D = 1), each is sent PROCEED before the message that
 * opens the phase for it ({@linkcode admitAllAhead}), so its INPUT and its
 * chunks leave in one write.
 *
 * n-of-n: when every participant's vector is in, the sum is the result
 * (pairwise masks cancel) and the round is done. Threshold: the senders of
 * complete vectors are the survivors S; if |S| ≥ T and ≥ the minimum
 * contributors, SURVIVORS goes to each of them, with every survivor's signed
 * INPUT statement, and Consistency follows. A
 * sender lost after its vector was complete stays in S: its vector is in
 * the sum, and its self seed is rebuilt from the others' shares.
 *
 * | event from an expected participant              | decision              |
 * | ----------------------------------------------- | --------------------- |
 * | input: length = dimension, signature verifies   | chunks expected       |
 * | input with another length or a bad signature    | violation             |
 * | n-of-n input whose seedCommit is not all zeros  | violation             |
 * | input whose partner set is not the expected set | violation             |
 * | a second input                                  | violation             |
 * | input, admitted or queued for admission        | PROCEED when a slot   |
 * |                                                 |   frees (or sent it   |
 * |                                                 |   ahead, all fitting) |
 * | chunk without input, before PROCEED, out of     | violation             |
 * |   order, of the wrong length                    |                       |
 * | last chunk, digest does not match               | violation             |
 * | complete vector with an element at or above its | violation             |
 * |   segment's modulus (e.g. in [p2, p1) in a p2   |                       |
 * |   segment: the chunk codec only knows p1)       |                       |
 * | an admitted upload stalled (the runtime's clock)| lost, as below        |
 * | abort, disconnect (also mid-vector)             | lost; partial dropped;|
 * |                                                 |   its slot goes on    |
 * | timeout, or every vector complete               | result / survivors    |
 *
 * Violation or loss: n-of-n aborts the round, threshold drops the sender.
 *
 * The running sum is segmented by the round's layout: each segment is added
 * modulo its own modulus (p1, p2 or p3), so a residue sums as a residue.
 *
 * @module
 */

import { Awaited } from "./awaited.ts";
import { addSegmentsInto, isSegmentedFieldVector } from "../../field.ts";
import { sign, verify } from "../../crypto/signing.ts";
import { vectorDigest } from "../../crypto/digest.ts";
import { type Chunk, CHUNK_ELEMENTS, type Message } from "../../wire/messages.ts";
import { partnerBitmap } from "../partners.ts";
import { setDigest } from "../graph.ts";
import { toHex } from "../../encoding.ts";
import { totalsWithinBounds } from "../../query.ts";
import { doneFields, inputFields, NO_SEED_COMMIT } from "../transcript.ts";
import { AttestState } from "./attest.ts";
import { ConsistencyState } from "./consistency.ts";
import { abortRound, type HospitalContext, HospitalState } from "./state.ts";

interface Incoming {
  digest: string;
  /** The vector so far: allocated at its first chunk, so a queued upload holds none. */
  vector: Float64Array | undefined;
  /** Index of the next chunk expected. */
  next: number;
}

/**
 * Sends PROCEED to every peer of `expected` still in, if they all fit in
 * the round's upload slots, and says whether it did. Called just before the
 * previous phase sends what opens this one (CONFIRMATIONS, SHARES), so that
 * each peer holds PROCEED when it sends INPUT and sends INPUT and chunks in
 * one write. A PROCEED sent after INPUT instead cost 44 ms at N = 3 (31 →
 * 76 ms START→result, measured): the peer's second small write waited, by
 * Nagle's algorithm (a Deno client socket cannot turn it off), for the
 * hospital's delayed acknowledgement of the first.
 */
export function admitAllAhead(ctx: HospitalContext, expected: readonly string[]): boolean {
  if (expected.length > ctx.uploads) return false;
  for (const name of expected) {
    if (ctx.live(name)) sendProceed(ctx, name);
  }
  return true;
}

/** Admits `name`'s upload: from now on its chunks are welcome. */
function sendProceed(ctx: HospitalContext, name: string): void {
  ctx.send(name, { type: "proceed", session: ctx.session });
}

/** Collecting INPUT and its chunks. */
export class MaskedInputState extends HospitalState {
  readonly phase = "input";
  #expected: readonly string[];
  readonly #awaited: Awaited;
  #members: ReadonlySet<string>;
  /** The partner bitmap every sender must sign: the peers expected here (complete graph). */
  #partners: string;
  #incoming = new Map<string, Incoming>();
  /** Sent PROCEED, vector not yet complete: at most `ctx.uploads` at once. */
  #admitted = new Set<string>();
  /** INPUT accepted, waiting for PROCEED, in arrival order. */
  #queue: string[] = [];
  #complete = new Set<string>();
  #sum: Float64Array;

  /**
   * Opens the phase over `expected`. `admitted`: every one of them was sent
   * PROCEED already ({@linkcode admitAllAhead}); otherwise each is admitted
   * after its INPUT, as slots free.
   */
  constructor(ctx: HospitalContext, expected: readonly string[], admitted: boolean) {
    super(ctx);
    this.#expected = expected;
    this.#awaited = new Awaited(this.#expected);
    this.#members = new Set(expected);
    this.#partners = ctx.graph ? "" : partnerBitmap(ctx.roster.map((p) => p.name), expected);
    this.#sum = new Float64Array(ctx.layout.dimension);
    if (admitted) this.#admitted = new Set(expected.filter((name) => ctx.live(name)));
  }

  #proceed(name: string): void {
    this.#admitted.add(name);
    sendProceed(this.ctx, name);
  }

  /** Admits queued senders, in INPUT order, while slots are free. */
  #admitQueued(): void {
    while (this.#admitted.size < this.ctx.uploads && this.#queue.length > 0) {
      const name = this.#queue.shift()!;
      // A queued sender lost since is dropped (n-of-n: the round is over).
      if (this.ctx.live(name)) this.#proceed(name);
    }
  }

  protected override member(name: string): boolean {
    return this.#members.has(name);
  }

  /** The partner bitmap `from` must sign: H, or in a sparse round H in its window (§18). */
  #partnersOf(from: string): string {
    const graph = this.ctx.graph;
    return graph ? graph.bitmap(from, this.#members) : this.#partners;
  }

  protected async collect(from: string, message: Message): Promise<HospitalState> {
    if (message.type !== "input") return this;
    if (this.#incoming.has(from) || this.#complete.has(from)) {
      return await this.lost(from, "second input");
    }
    const { dimension } = this.ctx.layout;
    if (message.length !== dimension) {
      return await this.lost(from, `its input has ${message.length} elements, not ${dimension}`);
    }
    // n-of-n rounds have no self seed: one spelling of "none".
    if (!this.ctx.threshold && message.seedCommit !== NO_SEED_COMMIT) {
      return await this.lost(from, "its input commits to a self seed in an n-of-n round");
    }
    // Every sender must have masked with exactly the peers the hospital
    // expects inputs from (the holders H; n-of-n: everyone): the unmasking
    // removes the pairwise masks of each dropped holder from every survivor.
    if (message.partners !== this.#partnersOf(from)) {
      return await this.lost(from, "its input's partner set is not the set of holders");
    }
    const statement = {
      length: message.length,
      digest: message.digest,
      seedCommit: message.seedCommit,
      partners: message.partners,
    };
    const fields = inputFields(this.ctx.session, this.ctx.startHash, statement);
    if (!(await verify(this.ctx.verifyKeys.get(from)!, message.signature, "input", fields))) {
      return await this.lost(from, "its input signature does not verify");
    }
    this.ctx.signed.inputs.set(from, { name: from, ...statement, signature: message.signature });
    this.#incoming.set(from, { digest: message.digest, vector: undefined, next: 0 });
    if (!this.#admitted.has(from)) {
      this.#queue.push(from);
      this.#admitQueued();
    }
    return this;
  }

  override async chunk(from: string, chunk: Chunk): Promise<HospitalState> {
    if (!this.member(from) || !this.ctx.live(from)) return this;
    const incoming = this.#incoming.get(from);
    if (!incoming) return await this.lost(from, "chunk without input");
    // Unadmitted chunks are exactly what the bound on uploads keeps out.
    if (!this.#admitted.has(from)) return await this.lost(from, "chunk before PROCEED");
    const { dimension } = this.ctx.layout;
    const offset = incoming.next * CHUNK_ELEMENTS;
    const length = Math.min(CHUNK_ELEMENTS, dimension - offset);
    if (chunk.index !== incoming.next || chunk.data.length !== length) {
      return await this.lost(from, `chunk ${chunk.index} is out of order or of the wrong length`);
    }
    // A vector of one chunk is that chunk's own (freshly decoded) array: no copy.
    if (length === dimension) incoming.vector = chunk.data;
    else (incoming.vector ??= new Float64Array(dimension)).set(chunk.data, offset);
    incoming.next++;
    if (offset + length < dimension) return this;
    const vector = incoming.vector!;
    this.#incoming.delete(from);
    this.#admitted.delete(from);
    this.#admitQueued();
    if ((await vectorDigest(vector)) !== incoming.digest) {
      return await this.lost(from, "its vector does not match its signed digest");
    }
    // After the digest, so the violation is the sender's own signed vector.
    // Without it, an element ≥ its modulus would make the sum non-canonical
    // or wrong modulo that prime.
    if (!isSegmentedFieldVector(vector, this.ctx.layout.segments)) {
      return await this.lost(from, "an element of its vector is not below its segment's modulus");
    }
    addSegmentsInto(this.#sum, vector, this.ctx.layout.segments);
    this.#complete.add(from);
    return await this.settle();
  }

  override async stalled(name: string): Promise<HospitalState> {
    if (!this.#admitted.has(name) || !this.ctx.live(name)) return this;
    return await this.lost(name, "no progress on its masked input after PROCEED");
  }

  protected override async lost(name: string, reason: string): Promise<HospitalState> {
    this.#incoming.delete(name);
    this.#admitted.delete(name);
    const next = await super.lost(name, reason);
    // Still collecting (a threshold round without it): its slot goes on.
    if (next === this) this.#admitQueued();
    return next;
  }

  protected waiting(): boolean {
    return this.#awaited.any((n) => this.ctx.live(n) && !this.#complete.has(n));
  }

  async timeout(): Promise<HospitalState> {
    const ctx = this.ctx;
    // A complete vector is in the sum, so its sender is a survivor even if it
    // was lost afterwards: its self seed is rebuilt from the others' shares.
    const survivors = this.#expected.filter((n) => this.#complete.has(n));
    if (!ctx.threshold) {
      if (survivors.length < this.#expected.length) {
        return abortRound(ctx, "not every participant's masked input arrived");
      }
      return await finish(ctx, this.#sum, survivors);
    }
    for (const name of this.#expected) {
      if (ctx.live(name) && !this.#complete.has(name)) {
        // Distinguished so that an operator can tell the hospital's own
        // queue (too few upload slots for the deadline) from slow peers.
        ctx.drop(
          name,
          this.#queue.includes(name)
            ? `its upload was not admitted before the deadline (${this.ctx.uploads} at a time)`
            : "no complete masked input by the deadline",
        );
      }
    }
    const floor = Math.max(ctx.terms.threshold, ctx.terms.minContributors);
    if (survivors.length < floor) {
      return abortRound(ctx, `${survivors.length} masked inputs arrived; ${floor} are needed`);
    }
    // Each survivor's signed statement goes with the set: a peer signs S
    // only if every member's partner set holds all of S.
    const inputs = survivors.map((name) => {
      const { length: _length, ...entry } = ctx.signed.inputs.get(name)!;
      return entry;
    });
    const graph = ctx.graph;
    if (graph) {
      // Sparse: each survivor sees S in its window, with those members' statements.
      const survived = new Set(survivors);
      const statement = new Map(inputs.map((entry) => [entry.name, entry]));
      for (const name of survivors) {
        if (!ctx.live(name)) continue;
        const set = graph.within(name, survived);
        const local = set.map((n) => statement.get(n)!);
        ctx.send(name, { type: "survivors", session: ctx.session, set, inputs: local });
      }
      return new ConsistencyState(ctx, this.#expected, survivors, this.#sum);
    }
    for (const name of survivors) {
      if (ctx.live(name)) {
        ctx.send(name, { type: "survivors", session: ctx.session, set: survivors, inputs });
      }
    }
    return new ConsistencyState(ctx, this.#expected, survivors, this.#sum);
  }
}

/**
 * The round's result is `result`, the sum over exactly `set`: sign DONE and
 * send it to every participant still taking part, then collect the
 * survivors' attestations (lib/protocol/hospital/attest.ts); the outcome is
 * recorded when that phase ends.
 */
export async function finish(
  ctx: HospitalContext,
  result: Float64Array,
  set: readonly string[],
): Promise<HospitalState> {
  // Exact or absent: a total past |set| × its bound is no sum of honest
  // inputs (some input broke the terms), so it is not published (§10.9).
  if (!totalsWithinBounds(ctx.layout, result, set.length)) {
    return abortRound(
      ctx,
      "the sum is larger than the set's inputs allow: an input broke the terms",
    );
  }
  const resultDigest = await vectorDigest(result);
  // Sparse: no peer sees the whole set; DONE signs its digest and carries it.
  const digestOfSet = ctx.graph ? await setDigest(set) : undefined;
  const signature = await sign(
    ctx.signingKey,
    "done",
    doneFields(ctx.session, ctx.startHash, digestOfSet ?? set, resultDigest),
  );
  const extra = digestOfSet ? { setDigest: toHex(digestOfSet) } : {};
  for (const p of ctx.roster) {
    if (ctx.live(p.name)) {
      ctx.send(p.name, { type: "done", session: ctx.session, resultDigest, signature, ...extra });
    }
  }
  ctx.log(`round done over ${set.length} participants`);
  const attest = new AttestState(ctx, { result, set, resultDigest, doneSignature: signature });
  return await attest.open();
}
