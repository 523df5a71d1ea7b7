/**
 * A peer: joins the hospital's round, encodes its rows as the round's query
 * asks, shares the resulting vector (pairwise seeded masks in additive mode,
 * Shamir share vectors in threshold mode), and sends the hospital only a
 * signed partial sum over exactly the agreed contributors.
 *
 * A peer never prints or sends its input, a share it keeps, or the sum; the
 * hospital alone learns the sum.
 *
 * @module
 */

import {
  abortable,
  deadlineSignal,
  deferred,
  formatSeconds,
  raceDeadline,
  TIMED_OUT,
} from "./deadline.ts";
import { AuthError, describeError, ProtocolError, RoundAbortedError } from "./errors.ts";
import { addInto, P_BIG } from "./field.ts";
import { clientHandshake, refuse, serverHandshake } from "./handshake.ts";
import {
  type Identity,
  signTranscript,
  type VerifiedParty,
  verifyPartyCertificate,
  verifyTranscript,
} from "./identity.ts";
import type { PeerData } from "./input.ts";
import type { MessageOf, Participant } from "./messages.ts";
import { formatHostPort, type HostPort, parseHostPort } from "./names.ts";
import { randomSeed } from "./prg.ts";
import {
  encodeInput,
  InputError,
  type Layout,
  parseQuery,
  type Query,
  vectorLayout,
} from "./query.ts";
import {
  aggregateFields,
  finalizeFields,
  handshakeTimeoutMs,
  NOTICE_TIMEOUT_MS,
  type RoundTerms,
  SHARING_FRACTION,
  shortSession,
  vectorDigest,
} from "./round.ts";
import { assertThresholdLayout, splitShamirVector } from "./shamir.ts";
import { applyMasks, type PairMask } from "./sharing.ts";
import { connectTls, listenTls, type MessageConnection } from "./transport.ts";

/** Options for {@linkcode runPeer}. */
export interface PeerOptions {
  identity: Identity;
  /** This peer's private numbers; checked against the round's query before anything is sent. */
  data: PeerData;
  /** The decimal places the numbers were read with; must be the round's. */
  scale: number;
  hospital: HostPort;
  /** The name on the hospital's certificate. */
  hospitalName: string;
  /** Where to listen for shares (port 0 picks a free port). */
  listen: HostPort;
  /** The address other peers should connect to; defaults to the bound address. */
  advertise?: HostPort;
  timeoutMs: number;
  log: (line: string) => void;
  onListening?: (address: HostPort) => void;
  /** Progress of long transfers: what, elements done, elements in all. */
  onProgress?: (label: string, done: number, total: number) => void;
  signal?: AbortSignal;
}

/** What a peer learns from a successful round: that it happened, not the sum. */
export interface PeerResult {
  session: string;
  participants: string[];
  contributors: string[];
  /** Frame bytes this peer sent and received over all its connections. */
  bytesSent: number;
  bytesReceived: number;
}

type Start = MessageOf<"start">;

/** Raised when this peer's own input cannot take part in the round. */
class InputRejectedError extends Error {
  override name = "InputRejectedError";
}

/** Runs one round as a peer, or throws {@linkcode RoundAbortedError}. */
export async function runPeer(options: PeerOptions): Promise<PeerResult> {
  return await new PeerRound(options).run();
}

class PeerRound {
  #options: PeerOptions;
  #stop = new AbortController();
  #failure = deferred<never>();
  #start = deferred<Start>();
  /** START after this peer has checked it: share handlers wait on it. */
  #checkedStart = deferred<Start>();
  #finalize = deferred<MessageOf<"finalize">>();
  #done = deferred<void>();
  /** Additive mode: the seeds lower-named peers sent us. */
  #seeds = new Map<string, Uint8Array>();
  /** Threshold mode: each sender's share vector, this peer's own included. */
  #shares = new Map<string, Float64Array>();
  #allReceived = deferred<void>();
  #connections = new Set<MessageConnection>();
  #abortedByHospital = false;
  #hospital: { conn: MessageConnection; party: VerifiedParty } | undefined;
  #query: Query | undefined;
  #layout: Layout | undefined;
  #dimension = 0;
  #bytes = { sent: 0, received: 0 };

  constructor(options: PeerOptions) {
    this.#options = options;
  }

  async run(): Promise<PeerResult> {
    const { identity, log, timeoutMs, signal, hospitalName } = this.#options;
    const listener = await listenTls(this.#options.listen, identity.certPem, identity.keyPem, {
      handshakeTimeoutMs: handshakeTimeoutMs(timeoutMs),
      onRefused: (remote, reason) => log(`refused connection from ${remote}: ${reason}`),
    });
    this.#options.onListening?.(listener.address);
    const advertise = formatHostPort(this.#options.advertise ?? listener.address);
    const accepting = listener.serve((conn) => this.#receiveShare(conn));
    const onCancel = () => this.#fail("Cancelled");
    signal?.addEventListener("abort", onCancel, { once: true });
    let hospitalConn: MessageConnection | undefined;
    let session: string | null = null;
    try {
      const connecting = deadlineSignal(timeoutMs, "connecting to the hospital", this.#stop.signal);
      hospitalConn = await connectTls(this.#options.hospital, identity.caPem, connecting);
      this.#connections.add(hospitalConn);
      const party = await clientHandshake(hospitalConn, identity, hospitalName, connecting);
      this.#hospital = { conn: hospitalConn, party };
      await hospitalConn.send(
        { type: "join", from: identity.name, to: hospitalName, address: advertise },
        connecting,
      );
      log(
        `joined ${hospitalName} at ${
          formatHostPort(this.#options.hospital)
        }; waiting for the round to start`,
      );
      const reading = this.#readFromHospital(hospitalConn);

      const start = await this.#until(
        this.#start.promise,
        timeoutMs,
        "waiting for the round to start",
      );
      const began = performance.now();
      session = start.session;
      await this.#checkStart(start, advertise);
      this.#checkedStart.resolve(start);
      log(
        `round ${
          shortSession(start.session)
        } started with ${start.participants.length} participants (${
          start.mode === "additive" ? "additive" : `threshold ${start.threshold}`
        }, ${start.query})`,
      );

      const vector = this.#encode(start);
      const { contributors, partial } = await this.#exchange(start, vector, began);
      const names = start.participants.map((p) => p.name);
      const terms: RoundTerms = { ...start, participants: names, contributors };
      const digest = await vectorDigest(partial);
      const fields = aggregateFields(terms, identity.name, hospitalName, partial.length, digest);
      const sending = deadlineSignal(
        start.deadlineMs,
        "sending the partial sum",
        this.#stop.signal,
      );
      await hospitalConn.send({
        type: "agg",
        session: start.session,
        from: identity.name,
        to: hospitalName,
        contributors,
        length: partial.length,
        sig: await signTranscript(identity.privateKey, "aggregate", fields),
      }, sending);
      await hospitalConn.sendVector(
        partial,
        sending,
        this.#progress("sending partial sum", partial.length),
      );
      log(
        `sent signed partial sum over ${contributors.length} contributors; waiting for the result`,
      );
      await this.#until(
        this.#done.promise,
        Math.max(start.deadlineMs - (performance.now() - began), 1) + NOTICE_TIMEOUT_MS,
        "waiting for the hospital to finish",
      );
      log(`round ${shortSession(start.session)} done`);
      this.#stop.abort();
      await reading;
      this.#count(hospitalConn);
      return {
        session: start.session,
        participants: names,
        contributors,
        bytesSent: this.#bytes.sent,
        bytesReceived: this.#bytes.received,
      };
    } catch (error) {
      const reason = describeError(error);
      if (hospitalConn && !this.#abortedByHospital && !hospitalConn.closed) {
        // An input problem is reported without detail: the reason reaches the
        // hospital and the other peers, and must say nothing about the input.
        const told = error instanceof InputRejectedError ? "withdrew from the round" : reason;
        await hospitalConn.send({
          type: "abort",
          session,
          from: identity.name,
          to: hospitalName,
          reason: told.slice(0, 1000),
        }, AbortSignal.timeout(NOTICE_TIMEOUT_MS)).catch(() => {});
      }
      throw new RoundAbortedError(reason, { cause: error });
    } finally {
      signal?.removeEventListener("abort", onCancel);
      this.#stop.abort();
      listener.close();
      for (const conn of this.#connections) conn.close();
      await accepting;
    }
  }

  /** Encodes this peer's rows as the round's query asks, refusing what does not fit. */
  #encode(start: Start): Float64Array {
    if (start.scale !== this.#options.scale) {
      throw new InputRejectedError(
        `The round uses --scale ${start.scale}; start this peer with --scale ${start.scale}`,
      );
    }
    try {
      return encodeInput(this.#query!, this.#options.data, {
        scale: start.scale,
        layout: this.#layout!,
      });
    } catch (error) {
      if (error instanceof InputError) {
        throw new InputRejectedError(`Cannot use the input: ${error.message}`);
      }
      throw error;
    }
  }

  /** A progress callback for a transfer of `total` elements; none for short ones. */
  #progress(label: string, total: number): ((done: number) => void) | undefined {
    const report = this.#options.onProgress;
    return report && total >= 1 << 16 ? (done) => report(label, done, total) : undefined;
  }

  #count(conn: MessageConnection): void {
    this.#bytes.sent += conn.bytesSent;
    this.#bytes.received += conn.bytesReceived;
  }

  /**
   * Runs the sharing phase; returns the contributor set and this peer's
   * partial sum over it.
   *
   * Additive: for each pair of participants the lower-named one draws a seed
   * and sends it to the other; each peer adds the masks of the seeds it sent
   * and subtracts those it received. That masked vector is its partial sum,
   * and everyone contributes.
   *
   * Threshold: Shamir share vectors go to every other peer; after the sharing
   * deadline the peer reports whose shares it holds and sums exactly the
   * contributors the hospital fixes.
   */
  async #exchange(
    start: Start,
    vector: Float64Array,
    began: number,
  ): Promise<{ contributors: string[]; partial: Float64Array }> {
    const { identity, log, hospitalName } = this.#options;
    const n = start.participants.length;
    const additive = start.mode === "additive";
    const me = start.participants.findIndex((p) => p.name === identity.name);
    const sharingMs = additive ? start.deadlineMs : start.deadlineMs * SHARING_FRACTION;
    const sharing = deadlineSignal(sharingMs, "exchanging shares", this.#stop.signal);

    let sends: { to: Participant; payload: Uint8Array | Float64Array }[];
    if (additive) {
      sends = start.participants.slice(me + 1).map((to) => ({ to, payload: randomSeed() }));
    } else {
      const shares = await splitShamirVector(vector, n, start.threshold);
      this.#shares.set(identity.name, shares[me]!);
      sends = start.participants.map((to, i) => ({ to, payload: shares[i]! }))
        .filter(({ to }) => to.name !== identity.name);
    }
    this.#checkReceived(start);
    const sent = await this.#until(
      Promise.allSettled(
        sends.map(({ to, payload }) => this.#sendShare(start, to, payload, sharing)),
      ),
      sharingMs + NOTICE_TIMEOUT_MS,
      "sending shares",
    );
    const failedSends = sent.filter((r) => r.status === "rejected").length;
    const allArrived = await this.#until(
      this.#allReceived.promise.then(() => true),
      Math.max(began + sharingMs - performance.now(), 1),
      "exchanging shares",
      additive ? undefined : false,
    );
    const [got, expected] = additive ? [this.#seeds.size, me] : [this.#shares.size - 1, n - 1];
    log(
      `sent ${
        sends.length - failedSends
      } of ${sends.length} shares; received ${got} of ${expected}`,
    );

    if (additive) {
      if (!allArrived) throw new RoundAbortedError("Timed out exchanging shares");
      const masks: PairMask[] = sends.map(({ payload }) => ({
        seed: payload as Uint8Array,
        sign: 1,
      }));
      for (const seed of this.#seeds.values()) masks.push({ seed, sign: -1 });
      // Each segment's masks are drawn and added modulo its own modulus.
      await applyMasks(vector, masks, { segments: this.#layout!.segments });
      return { contributors: start.participants.map((p) => p.name), partial: vector };
    }

    const held = [...this.#shares.keys()].sort();
    await this.#hospital!.conn.send({
      type: "holding",
      session: start.session,
      from: identity.name,
      to: hospitalName,
      senders: held,
    }, deadlineSignal(start.deadlineMs, "reporting shares held", this.#stop.signal));
    const finalize = await this.#until(
      this.#finalize.promise,
      Math.max(start.deadlineMs - (performance.now() - began), 1),
      "waiting for the contributor set",
    );
    await this.#checkFinalize(start, finalize, held);
    log(`contributors: ${finalize.contributors.join(", ")}`);
    const partial = new Float64Array(this.#dimension);
    for (const name of finalize.contributors) addInto(partial, this.#shares.get(name)!);
    return { contributors: finalize.contributors, partial };
  }

  /** Checks FINALIZE: the hospital's signature, and a set this peer may answer for. */
  async #checkFinalize(
    start: Start,
    finalize: MessageOf<"finalize">,
    held: string[],
  ): Promise<void> {
    const { identity, hospitalName } = this.#options;
    if (
      finalize.session !== start.session || finalize.to !== identity.name ||
      finalize.from !== hospitalName
    ) {
      throw new ProtocolError("FINALIZE is for another session or party");
    }
    const fields = finalizeFields(start.session, hospitalName, finalize.contributors);
    if (
      !(await verifyTranscript(this.#hospital!.party.publicKey, finalize.sig, "finalize", fields))
    ) {
      throw new AuthError("Invalid signature on FINALIZE");
    }
    // The floor holds here too: answering for one contributor would hand the
    // hospital that contributor's input.
    if (finalize.contributors.length < 2) {
      throw new ProtocolError("FINALIZE names fewer than 2 contributors");
    }
    const missing = finalize.contributors.filter((name) => !held.includes(name));
    if (missing.length > 0) {
      throw new ProtocolError(
        `FINALIZE names contributors whose shares this peer does not hold: ${missing.join(", ")}`,
      );
    }
  }

  async #until<T>(goal: Promise<T>, ms: number, what: string, onTimeout?: T): Promise<T> {
    const result = await raceDeadline(goal, this.#failure, ms, this.#stop.signal);
    if (result !== TIMED_OUT) return result;
    if (onTimeout !== undefined) return onTimeout;
    throw new RoundAbortedError(`Timed out after ${formatSeconds(ms)} ${what}`);
  }

  #fail(reason: string): void {
    if (!this.#failure.settled) this.#failure.reject(new RoundAbortedError(reason));
  }

  /** Checks START before acting on it: a hospital's mistake must not leak or wrap. */
  async #checkStart(start: Start, advertise: string): Promise<void> {
    const { identity, hospitalName } = this.#options;
    if (start.from !== hospitalName || start.to !== identity.name) {
      throw new ProtocolError("START names the wrong sender or recipient");
    }
    if (start.p !== P_BIG) {
      throw new ProtocolError(`START uses p = ${start.p}, but this build uses p = ${P_BIG}`);
    }
    const n = start.participants.length;
    // Compute the layout independently of the hospital, refusing terms under
    // which an element could wrap.
    this.#query = parseQuery(start.query, start.scale);
    this.#layout = vectorLayout(this.#query, {
      max: start.max,
      maxRows: start.maxRows,
      participants: n,
    });
    this.#dimension = this.#layout.dimension;
    // Share vectors live in GF(p1) only: residues modulo p2 or p3 cannot be
    // Shamir-shared, whatever the hospital asks.
    if (start.mode === "threshold") assertThresholdLayout(this.#layout);
    if (
      start.mode === "additive"
        ? start.threshold !== n
        : start.threshold * 2 <= n || start.threshold > n
    ) {
      throw new ProtocolError(
        `START has threshold ${start.threshold} for ${n} participants in ${start.mode} mode`,
      );
    }
    const names = start.participants.map((p) => p.name);
    if (names.some((name, i) => i > 0 && !(names[i - 1]! < name))) {
      throw new ProtocolError("START's participants are not sorted by name");
    }
    const me = start.participants.find((p) => p.name === identity.name);
    if (!me || me.address !== advertise || me.cert !== identity.certPem) {
      throw new ProtocolError("START does not list this peer as it joined");
    }
    if (names.includes(hospitalName)) {
      throw new ProtocolError("START lists the hospital as a participant");
    }
    await Promise.all(
      start.participants.map((p) => verifyPartyCertificate(p.cert, identity.ca, p.name)),
    );
  }

  /** Reads the hospital's messages: START, FINALIZE (threshold), then DONE or ABORT. */
  async #readFromHospital(hospital: MessageConnection): Promise<void> {
    const { identity, hospitalName } = this.#options;
    try {
      for (;;) {
        const message = await hospital.receive(this.#stop.signal);
        if (message.type === "start" && !this.#start.settled) {
          this.#start.resolve(message);
        } else if (
          message.type === "finalize" && this.#checkedStart.settled && !this.#finalize.settled
        ) {
          this.#finalize.resolve(message);
        } else if (message.type === "done" && this.#checkedStart.settled) {
          const start = await this.#checkedStart.promise;
          if (message.session !== start.session || message.to !== identity.name) {
            throw new ProtocolError("DONE is for another session or party");
          }
          this.#done.resolve();
          return;
        } else if (message.type === "abort") {
          this.#abortedByHospital = true;
          this.#fail(`${hospitalName} aborted the round: ${describeError(message.reason)}`);
          return;
        } else if (message.type === "refuse") {
          this.#abortedByHospital = true;
          this.#fail(`${hospitalName} refused this peer: ${describeError(message.reason)}`);
          return;
        } else {
          throw new ProtocolError(`Unexpected ${message.type} message from ${hospitalName}`);
        }
      }
    } catch (error) {
      if (this.#stop.signal.aborted || this.#done.settled) return;
      this.#fail(`lost the connection to ${hospitalName}: ${describeError(error)}`);
    }
  }

  /**
   * Sends one share: a seed (additive) or a share vector (threshold). In
   * additive mode a failure aborts the round; in threshold mode the share
   * just does not arrive, and the hospital leaves this peer out of the
   * contributors if a live peer lacks it.
   */
  async #sendShare(
    start: Start,
    to: Participant,
    payload: Uint8Array | Float64Array,
    signal: AbortSignal,
  ): Promise<void> {
    const { identity, log } = this.#options;
    try {
      const conn = await connectTls(parseHostPort(to.address), identity.caPem, signal);
      this.#connections.add(conn);
      try {
        const server = await clientHandshake(conn, identity, to.name, signal);
        if (server.certPem !== to.cert) {
          throw new AuthError(`${to.name} presented a certificate other than the one in START`);
        }
        const header = { session: start.session, from: identity.name, to: to.name };
        if (payload instanceof Float64Array) {
          await conn.send({ type: "share", ...header, length: payload.length }, signal);
          await conn.sendVector(
            payload,
            signal,
            this.#progress(`sending share to ${to.name}`, payload.length),
          );
        } else {
          await conn.send({ type: "seed", ...header, seed: payload }, signal);
        }
        const ack = await conn.receive(signal);
        if (
          ack.type !== "ack" || ack.session !== start.session || ack.from !== to.name ||
          ack.to !== identity.name
        ) {
          throw new ProtocolError(`${to.name} did not acknowledge the share`);
        }
        log(`sent share to ${to.name}`);
      } finally {
        conn.close();
        this.#connections.delete(conn);
        this.#count(conn);
      }
    } catch (error) {
      // Never include the share: the reason names only the party and the failure.
      const reason = `Cannot send share to ${to.name}: ${describeError(error)}`;
      if (start.mode === "additive") this.#fail(reason);
      else log(reason);
      throw error;
    }
  }

  /** Resolves the wait for shares once every expected one is here. */
  #checkReceived(start: Start): void {
    const me = start.participants.findIndex((p) => p.name === this.#options.identity.name);
    const complete = start.mode === "additive"
      ? this.#seeds.size === me
      : this.#shares.size === start.participants.length;
    if (complete) this.#allReceived.resolve();
  }

  /** Serves one incoming connection: an authenticated participant's seed or share vector. */
  async #receiveShare(conn: MessageConnection): Promise<void> {
    const { identity, log, timeoutMs } = this.#options;
    this.#connections.add(conn);
    let participant: string | undefined;
    try {
      const first = deadlineSignal(
        handshakeTimeoutMs(timeoutMs),
        "in the handshake",
        this.#stop.signal,
      );
      await conn.handshake(first);
      let ackSignal = first;
      const party = await serverHandshake(conn, identity, first);
      const received = await conn.receive(first).then(
        (message) => ({ message }),
        (error: unknown) => ({ error }),
      );
      // A fast peer may reach us before our own START arrives; wait for it.
      const start = await abortable(
        this.#checkedStart.promise,
        deadlineSignal(timeoutMs, "waiting for START", this.#stop.signal),
      );
      const listed = start.participants.find((p) => p.name === party.name);
      if (!listed || listed.cert !== party.certPem) {
        throw new AuthError(`${party.name} is not a participant of this round`);
      }
      // From here on a failure is a participant's deviation, and aborts the round.
      participant = party.name;
      if ("error" in received) throw received.error;
      const message = received.message;
      if (message.type !== "seed" && message.type !== "share") {
        throw new ProtocolError(`Unexpected ${message.type} message`);
      }
      if (message.session !== start.session) {
        throw new ProtocolError("Share is for another session");
      }
      if (message.from !== party.name || message.to !== identity.name) {
        throw new ProtocolError("Share names the wrong sender or recipient");
      }
      if (message.type === "seed") {
        if (start.mode !== "additive") throw new ProtocolError("A seed in a threshold round");
        if (!(party.name < identity.name)) {
          throw new ProtocolError("A seed from a higher-named peer");
        }
        if (this.#seeds.has(party.name)) {
          throw new ProtocolError("Second share from the same sender");
        }
        this.#seeds.set(party.name, message.seed);
      } else {
        ackSignal = deadlineSignal(start.deadlineMs, "receiving a share", this.#stop.signal);
        if (start.mode !== "threshold") {
          throw new ProtocolError("A share vector in an additive round");
        }
        if (message.length !== this.#dimension) {
          throw new ProtocolError(
            `Share of ${message.length} elements; the query has ${this.#dimension}`,
          );
        }
        if (this.#shares.has(party.name)) {
          throw new ProtocolError("Second share from the same sender");
        }
        const share = await conn.receiveVector(
          message.length,
          ackSignal,
          this.#progress(`receiving share from ${party.name}`, message.length),
        );
        if (this.#shares.has(party.name)) {
          throw new ProtocolError("Second share from the same sender");
        }
        this.#shares.set(party.name, share);
      }
      // A share vector may take longer than the first-message deadline: its
      // acknowledgement runs under the round's deadline, as its transfer did.
      await conn.send(
        { type: "ack", session: start.session, from: identity.name, to: party.name },
        ackSignal,
      );
      log(`received share from ${party.name}`);
      this.#checkReceived(start);
    } catch (error) {
      if (this.#stop.signal.aborted) return;
      const reason = describeError(error);
      if (
        participant !== undefined && (error instanceof ProtocolError || error instanceof AuthError)
      ) {
        // A participant of this round deviated: the round cannot be trusted.
        await refuse(conn, reason);
        this.#fail(`bad share from ${participant}: ${reason}`);
      } else {
        log(`refused connection from ${conn.remote}: ${reason}`);
      }
    } finally {
      conn.close();
      this.#connections.delete(conn);
      this.#count(conn);
    }
  }
}
