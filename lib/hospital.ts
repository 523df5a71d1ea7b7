/**
 * The hospital: waits for N authenticated peers, starts a round, collects one
 * signed partial sum from each, and adds them up. It never sees a share.
 *
 * @module
 */

import { abortable, deadlineSignal, deferred, formatSeconds } from "./deadline.ts";
import { AuthError, describeError, ProtocolError, RoundAbortedError } from "./errors.ts";
import { P } from "./field.ts";
import { expectMessage, refuse, serverHandshake } from "./handshake.ts";
import { type Identity, type VerifiedParty, verifyTranscript } from "./identity.ts";
import type { Message, Participant } from "./messages.ts";
import type { HostPort } from "./names.ts";
import {
  aggregateFields,
  HANDSHAKE_TIMEOUT_MS,
  newSessionId,
  NOTICE_TIMEOUT_MS,
  shortSession,
} from "./round.ts";
import { addShares, assertSumFits } from "./sharing.ts";
import { listenTls, type MessageConnection, type MessageListener } from "./transport.ts";

/** Options for {@linkcode runHospital}. */
export interface HospitalOptions {
  identity: Identity;
  listen: HostPort;
  /** How many peers the round needs. */
  peers: number;
  /** The largest input R. */
  max: bigint;
  /** The timeout for each phase, in milliseconds. */
  timeoutMs: number;
  /** Progress lines (never values). */
  log: (line: string) => void;
  /** Called once the listener is bound, with the actual address. */
  onListening?: (address: HostPort) => void;
  /** Cancels the round from outside. */
  signal?: AbortSignal;
}

/** One peer's signed partial sum, kept as evidence. */
export interface SignedPartial {
  name: string;
  partial: bigint;
  signature: Uint8Array;
}

/** The outcome of a successful round. */
export interface RoundResult {
  sum: bigint;
  session: string;
  p: bigint;
  max: bigint;
  participants: string[];
  partials: SignedPartial[];
}

interface PeerSlot {
  party: VerifiedParty;
  address: string;
  conn: MessageConnection;
}

/** Runs one round as the hospital and returns its result, or throws {@linkcode RoundAbortedError}. */
export async function runHospital(options: HospitalOptions): Promise<RoundResult> {
  assertSumFits(options.peers, options.max);
  return await new HospitalRound(options).run();
}

class HospitalRound {
  #options: HospitalOptions;
  #phase: "joining" | "running" | "finished" = "joining";
  #slots = new Map<string, PeerSlot>();
  #connections = new Set<MessageConnection>();
  /** Aborted when the round ends, for any reason: stops every reader. */
  #stop = new AbortController();
  #allJoined = deferred<void>();
  #failure = deferred<never>();
  #session = "";
  #names: string[] = [];
  #partials = new Map<string, SignedPartial>();
  #allAggregated = deferred<void>();

  constructor(options: HospitalOptions) {
    this.#options = options;
  }

  async run(): Promise<RoundResult> {
    const { identity, log, peers, timeoutMs, signal } = this.#options;
    const listener = listenTls(this.#options.listen, identity.certPem, identity.keyPem);
    this.#options.onListening?.(listener.address);
    const accepting = this.#acceptLoop(listener);
    const onCancel = () => this.#fail("Cancelled");
    signal?.addEventListener("abort", onCancel, { once: true });
    try {
      log(`waiting for ${peers} peers to join (timeout ${formatSeconds(timeoutMs)})`);
      await this.#until(
        this.#allJoined.promise,
        timeoutMs,
        () =>
          `waiting for peers to join (${this.#slots.size} of ${peers} joined${
            this.#slots.size ? ": " + [...this.#slots.keys()].sort().join(", ") : ""
          })`,
      );
      await this.#start();
      await this.#until(this.#allAggregated.promise, timeoutMs, () => {
        const missing = this.#names.filter((n) => !this.#partials.has(n));
        return `waiting for partial sums (missing from ${missing.join(", ")})`;
      });
      const partials = this.#names.map((name) => this.#partials.get(name)!);
      const sum = addShares(partials.map((p) => p.partial));
      this.#phase = "finished";
      log(`all ${peers} partial sums verified; sum reconstructed`);
      await this.#broadcast((name) => ({
        type: "done",
        session: this.#session,
        from: identity.name,
        to: name,
      }));
      return {
        sum,
        session: this.#session,
        p: P,
        max: this.#options.max,
        participants: [...this.#names],
        partials,
      };
    } catch (error) {
      const reason = describeError(error);
      this.#phase = "finished";
      await this.#broadcast((name) => ({
        type: "abort",
        session: this.#session || null,
        from: identity.name,
        to: name,
        reason: reason.slice(0, 1000),
      }));
      throw new RoundAbortedError(reason, { cause: error });
    } finally {
      signal?.removeEventListener("abort", onCancel);
      this.#stop.abort();
      listener.close();
      for (const conn of this.#connections) conn.close();
      await accepting;
    }
  }

  /** Waits for `goal`, failing on the round's failure or after `ms`. */
  async #until(goal: Promise<void>, ms: number, what: () => string): Promise<void> {
    const deadline = deadlineSignal(ms, "", this.#stop.signal);
    try {
      await abortable(Promise.race([goal, this.#failure.promise]), deadline);
    } catch (error) {
      if (deadline.aborted && !this.#failure.settled) {
        throw new RoundAbortedError(`Timed out after ${formatSeconds(ms)} ${what()}`);
      }
      throw error;
    }
  }

  #fail(reason: string): void {
    if (!this.#failure.settled) this.#failure.reject(new RoundAbortedError(reason));
  }

  async #start(): Promise<void> {
    const { identity, log, max, timeoutMs } = this.#options;
    this.#session = newSessionId();
    this.#names = [...this.#slots.keys()].sort();
    const participants: Participant[] = this.#names.map((name) => {
      const slot = this.#slots.get(name)!;
      return { name, address: slot.address, cert: slot.party.certPem };
    });
    log(`starting session ${shortSession(this.#session)} with ${this.#names.join(", ")}`);
    await Promise.all(this.#names.map((name) =>
      this.#slots.get(name)!.conn.send({
        type: "start",
        session: this.#session,
        from: identity.name,
        to: name,
        p: P,
        max,
        deadlineMs: timeoutMs,
        participants,
      }, deadlineSignal(HANDSHAKE_TIMEOUT_MS, `sending START to ${name}`, this.#stop.signal))
    ));
  }

  /** Sends one message per joined peer, best effort and bounded in time. */
  async #broadcast(make: (name: string) => Message): Promise<void> {
    await Promise.allSettled(
      [...this.#slots].map(([name, slot]) =>
        slot.conn.send(make(name), AbortSignal.timeout(NOTICE_TIMEOUT_MS))
      ),
    );
  }

  async #acceptLoop(listener: MessageListener): Promise<void> {
    const serving = new Set<Promise<void>>();
    for await (const conn of listener.accept()) {
      const task = this.#serve(conn).finally(() => serving.delete(task));
      serving.add(task);
    }
    await Promise.allSettled(serving);
  }

  async #serve(conn: MessageConnection): Promise<void> {
    const { identity, log, peers } = this.#options;
    this.#connections.add(conn);
    let joinedAs: string | undefined;
    try {
      const first = deadlineSignal(HANDSHAKE_TIMEOUT_MS, "in the handshake", this.#stop.signal);
      await conn.handshake(first);
      const party = await serverHandshake(conn, identity, first);
      const join = await expectMessage(conn, "join", first);
      if (join.from !== party.name || join.to !== identity.name) {
        throw new ProtocolError("JOIN names the wrong sender or recipient");
      }
      if (this.#phase !== "joining") {
        log(`refused ${party.name}: the session has started`);
        await refuse(conn, "Cannot join round: session has started");
        return;
      }
      if (this.#slots.has(party.name)) {
        log(`refused a second connection claiming ${party.name}: already joined`);
        await refuse(
          conn,
          `Cannot join round: a party named ${JSON.stringify(party.name)} has already joined`,
        );
        return;
      }
      joinedAs = party.name;
      this.#slots.set(party.name, { party, address: join.address, conn });
      log(
        `${party.name} joined from ${conn.remote}, shares at ${join.address} (${this.#slots.size}/${peers})`,
      );
      if (this.#slots.size === peers) {
        // No more joins from here on: a departure now fails the round.
        this.#phase = "running";
        this.#allJoined.resolve();
      }
      await this.#readFromPeer(party.name, conn);
    } catch (error) {
      if (this.#phase === "finished" || this.#stop.signal.aborted) return;
      const reason = describeError(error);
      if (joinedAs === undefined) {
        log(`refused connection from ${conn.remote}: ${reason}`);
      } else if (this.#phase === "joining") {
        this.#slots.delete(joinedAs);
        log(`${joinedAs} left before the round started: ${reason}`);
      } else {
        this.#fail(`lost the connection to ${joinedAs}: ${reason}`);
      }
    } finally {
      conn.close();
      this.#connections.delete(conn);
    }
  }

  /** Reads a joined peer's messages until the round ends. */
  async #readFromPeer(name: string, conn: MessageConnection): Promise<void> {
    const { identity } = this.#options;
    for (;;) {
      const message = await conn.receive(this.#stop.signal);
      if (message.type === "abort") {
        this.#fail(`${name} aborted the round: ${message.reason}`);
        return;
      }
      if (message.type !== "agg" || this.#phase !== "running") {
        throw new ProtocolError(`Unexpected ${message.type} message`);
      }
      if (message.session !== this.#session) {
        throw new ProtocolError("Partial sum is for another session");
      }
      if (message.from !== name || message.to !== identity.name) {
        throw new ProtocolError("Partial sum names the wrong sender or recipient");
      }
      if (this.#partials.has(name)) throw new ProtocolError("Second partial sum in one session");
      const fields = aggregateFields(
        this.#session,
        name,
        identity.name,
        this.#names,
        message.partial,
      );
      const publicKey = this.#slots.get(name)!.party.publicKey;
      if (!(await verifyTranscript(publicKey, message.sig, "aggregate", fields))) {
        throw new AuthError("Invalid signature on partial sum");
      }
      this.#partials.set(name, { name, partial: message.partial, signature: message.sig });
      this.#options.log(
        `partial sum from ${name} verified (${this.#partials.size}/${this.#names.length})`,
      );
      if (this.#partials.size === this.#names.length) this.#allAggregated.resolve();
    }
  }
}
