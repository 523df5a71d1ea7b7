/**
 * A peer: joins the hospital's round, splits its value into additive shares,
 * sends one share to each other participant, adds up the shares it holds and
 * sends the hospital only that signed partial sum.
 *
 * A peer never prints or sends its value, a share it holds for itself, or the
 * sum; the hospital alone learns the sum.
 *
 * @module
 */

import { abortable, deadlineSignal, deferred, formatSeconds } from "./deadline.ts";
import { AuthError, describeError, ProtocolError, RoundAbortedError } from "./errors.ts";
import { P } from "./field.ts";
import { clientHandshake, expectMessage, refuse, serverHandshake } from "./handshake.ts";
import { type Identity, signTranscript, verifyPartyCertificate } from "./identity.ts";
import type { MessageOf, Participant } from "./messages.ts";
import { formatHostPort, type HostPort, parseHostPort } from "./names.ts";
import { aggregateFields, HANDSHAKE_TIMEOUT_MS, NOTICE_TIMEOUT_MS, shortSession } from "./round.ts";
import { addShares, assertSumFits, splitIntoShares } from "./sharing.ts";
import {
  connectTls,
  listenTls,
  type MessageConnection,
  type MessageListener,
} from "./transport.ts";

/** Options for {@linkcode runPeer}. */
export interface PeerOptions {
  identity: Identity;
  /** This peer's private input; checked against the round's range before anything is sent. */
  value: bigint;
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
  signal?: AbortSignal;
}

/** What a peer learns from a successful round: that it happened, not the sum. */
export interface PeerResult {
  session: string;
  participants: string[];
}

type Start = MessageOf<"start">;

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
  #done = deferred<void>();
  #received = new Map<string, bigint>();
  #allReceived = deferred<void>();
  #connections = new Set<MessageConnection>();
  #abortedByHospital = false;

  constructor(options: PeerOptions) {
    this.#options = options;
  }

  async run(): Promise<PeerResult> {
    const { identity, log, timeoutMs, signal } = this.#options;
    const listener = listenTls(this.#options.listen, identity.certPem, identity.keyPem);
    this.#options.onListening?.(listener.address);
    const advertise = formatHostPort(this.#options.advertise ?? listener.address);
    const accepting = this.#acceptLoop(listener);
    const onCancel = () => this.#fail("Cancelled");
    signal?.addEventListener("abort", onCancel, { once: true });
    let hospital: MessageConnection | undefined;
    let session: string | null = null;
    try {
      const connecting = deadlineSignal(timeoutMs, "connecting to the hospital", this.#stop.signal);
      hospital = await connectTls(this.#options.hospital, identity.caPem, connecting);
      this.#connections.add(hospital);
      await clientHandshake(hospital, identity, this.#options.hospitalName, connecting);
      await hospital.send(
        { type: "join", from: identity.name, to: this.#options.hospitalName, address: advertise },
        connecting,
      );
      log(
        `joined ${this.#options.hospitalName} at ${
          formatHostPort(this.#options.hospital)
        }; waiting for the round to start`,
      );
      const reading = this.#readFromHospital(hospital);

      const start = await this.#until(
        this.#start.promise,
        timeoutMs,
        "waiting for the round to start",
      );
      session = start.session;
      await this.#checkStart(start, advertise);
      this.#checkedStart.resolve(start);
      const others = start.participants.filter((p) => p.name !== identity.name);
      log(
        `round ${
          shortSession(start.session)
        } started with ${start.participants.length} participants`,
      );

      const round = deadlineSignal(start.deadlineMs, "in the round", this.#stop.signal);
      const shares = splitIntoShares(this.#options.value, start.participants.length);
      const ownShare = shares.pop()!;
      if (others.length === 0) this.#allReceived.resolve();
      const sending = Promise.all(
        others.map((p, i) => this.#sendShare(start, p, shares[i]!, round)),
      );
      await this.#until(
        Promise.all([sending, this.#allReceived.promise]),
        start.deadlineMs,
        "exchanging shares",
      );
      log(`sent ${others.length} shares and received ${this.#received.size}`);

      const partial = addShares([ownShare, ...this.#received.values()]);
      const names = start.participants.map((p) => p.name);
      const fields = aggregateFields(
        start.session,
        identity.name,
        this.#options.hospitalName,
        names,
        partial,
      );
      await hospital.send({
        type: "agg",
        session: start.session,
        from: identity.name,
        to: this.#options.hospitalName,
        partial,
        sig: await signTranscript(identity.privateKey, "aggregate", fields),
      }, round);
      log("sent signed partial sum; waiting for the result");
      await this.#until(this.#done.promise, start.deadlineMs, "waiting for the hospital to finish");
      log(`round ${shortSession(start.session)} done`);
      this.#stop.abort();
      await reading;
      return { session: start.session, participants: names };
    } catch (error) {
      const reason = describeError(error);
      if (hospital && !this.#abortedByHospital && !hospital.closed) {
        await hospital.send({
          type: "abort",
          session,
          from: identity.name,
          to: this.#options.hospitalName,
          reason: reason.slice(0, 1000),
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

  async #until<T>(goal: Promise<T>, ms: number, what: string): Promise<T> {
    const deadline = deadlineSignal(ms, "", this.#stop.signal);
    try {
      return await abortable(Promise.race([goal, this.#failure.promise]), deadline);
    } catch (error) {
      if (deadline.aborted && !this.#failure.settled) {
        throw new RoundAbortedError(`Timed out after ${formatSeconds(ms)} ${what}`);
      }
      throw error;
    }
  }

  #fail(reason: string): void {
    if (!this.#failure.settled) this.#failure.reject(new RoundAbortedError(reason));
  }

  /** Checks START before acting on it: a hospital's mistake must not leak or wrap. */
  async #checkStart(start: Start, advertise: string): Promise<void> {
    const { identity, hospitalName, value } = this.#options;
    if (start.from !== hospitalName || start.to !== identity.name) {
      throw new ProtocolError("START names the wrong sender or recipient");
    }
    if (start.p !== P) {
      throw new ProtocolError(`START uses p = ${start.p}, but this build uses p = ${P}`);
    }
    assertSumFits(start.participants.length, start.max);
    const me = start.participants.find((p) => p.name === identity.name);
    if (!me || me.address !== advertise || me.cert !== identity.certPem) {
      throw new ProtocolError("START does not list this peer as it joined");
    }
    for (const p of start.participants) await verifyPartyCertificate(p.cert, identity.ca, p.name);
    if (value > start.max) {
      throw new RangeError(`Cannot share: the value is above the round's maximum R = ${start.max}`);
    }
  }

  /** Reads the hospital's messages: START, then DONE or ABORT. */
  async #readFromHospital(hospital: MessageConnection): Promise<void> {
    const { identity, hospitalName } = this.#options;
    try {
      for (;;) {
        const message = await hospital.receive(this.#stop.signal);
        if (message.type === "start" && !this.#start.settled) {
          this.#start.resolve(message);
        } else if (message.type === "done" && this.#checkedStart.settled) {
          const start = await this.#checkedStart.promise;
          if (message.session !== start.session || message.to !== identity.name) {
            throw new ProtocolError("DONE is for another session or party");
          }
          this.#done.resolve();
          return;
        } else if (message.type === "abort") {
          this.#abortedByHospital = true;
          this.#fail(`${hospitalName} aborted the round: ${message.reason}`);
          return;
        } else if (message.type === "refuse") {
          this.#abortedByHospital = true;
          this.#fail(`${hospitalName} refused this peer: ${message.reason}`);
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

  async #sendShare(
    start: Start,
    to: Participant,
    share: bigint,
    signal: AbortSignal,
  ): Promise<void> {
    const { identity } = this.#options;
    try {
      const conn = await connectTls(parseHostPort(to.address), identity.caPem, signal);
      this.#connections.add(conn);
      try {
        const server = await clientHandshake(conn, identity, to.name, signal);
        if (server.certPem !== to.cert) {
          throw new AuthError(`${to.name} presented a certificate other than the one in START`);
        }
        await conn.send({
          type: "share",
          session: start.session,
          from: identity.name,
          to: to.name,
          share,
        }, signal);
        const ack = await expectMessage(conn, "ack", signal);
        if (ack.session !== start.session || ack.from !== to.name || ack.to !== identity.name) {
          throw new ProtocolError("ACK is for another session or party");
        }
      } finally {
        conn.close();
        this.#connections.delete(conn);
      }
    } catch (error) {
      // Never include the share: the reason names only the party and the failure.
      this.#fail(`Cannot send share to ${to.name}: ${describeError(error)}`);
    }
  }

  async #acceptLoop(listener: MessageListener): Promise<void> {
    const serving = new Set<Promise<void>>();
    for await (const conn of listener.accept()) {
      const task = this.#receiveShare(conn).finally(() => serving.delete(task));
      serving.add(task);
    }
    await Promise.allSettled(serving);
  }

  /** Serves one incoming connection: an authenticated participant's share. */
  async #receiveShare(conn: MessageConnection): Promise<void> {
    const { identity, log, timeoutMs } = this.#options;
    this.#connections.add(conn);
    let participant: string | undefined;
    try {
      const first = deadlineSignal(HANDSHAKE_TIMEOUT_MS, "in the handshake", this.#stop.signal);
      await conn.handshake(first);
      const party = await serverHandshake(conn, identity, first);
      const message = await expectMessage(conn, "share", first);
      // A fast peer may reach us before our own START arrives; wait for it.
      const start = await abortable(
        this.#checkedStart.promise,
        deadlineSignal(timeoutMs, "waiting for START", this.#stop.signal),
      );
      const listed = start.participants.find((p) => p.name === party.name);
      if (!listed || listed.cert !== party.certPem) {
        throw new AuthError(`${party.name} is not a participant of this round`);
      }
      participant = party.name;
      if (message.session !== start.session) {
        throw new ProtocolError("Share is for another session");
      }
      if (message.from !== party.name || message.to !== identity.name) {
        throw new ProtocolError("Share names the wrong sender or recipient");
      }
      if (party.name === identity.name) throw new ProtocolError("Share from this peer's own name");
      if (this.#received.has(party.name)) {
        throw new ProtocolError("Second share from the same sender");
      }
      this.#received.set(party.name, message.share);
      await conn.send(
        { type: "ack", session: start.session, from: identity.name, to: party.name },
        first,
      );
      if (this.#received.size === start.participants.length - 1) this.#allReceived.resolve();
    } catch (error) {
      if (this.#stop.signal.aborted) return;
      const reason = describeError(error);
      if (participant !== undefined) {
        // A participant of this round deviated: the round cannot be trusted.
        await refuse(conn, reason);
        this.#fail(`bad share from ${participant}: ${reason}`);
      } else {
        log(`refused connection from ${conn.remote}: ${reason}`);
      }
    } finally {
      conn.close();
      this.#connections.delete(conn);
    }
  }
}
