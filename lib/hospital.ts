/**
 * The hospital: waits for N authenticated peers, starts a round, collects one
 * signed partial sum from each (additive mode) or agrees a contributor set and
 * collects at least T partial sums (threshold mode), and reconstructs the
 * sum. It never sees a share.
 *
 * @module
 */

import {
  deadlineSignal,
  type Deferred,
  deferred,
  formatSeconds,
  raceDeadline,
  TIMED_OUT,
} from "./deadline.ts";
import { AuthError, describeError, ProtocolError, RoundAbortedError } from "./errors.ts";
import { addSegmentsInto, isSegmentedFieldVector, P_BIG } from "./field.ts";
import { expectMessage, refuse, serverHandshake } from "./handshake.ts";
import { type Identity, signTranscript, type VerifiedParty, verifyTranscript } from "./identity.ts";
import type { Message, Participant } from "./messages.ts";
import type { HostPort } from "./names.ts";
import {
  aggregateFields,
  finalizeFields,
  HANDSHAKE_TIMEOUT_MS,
  handshakeTimeoutMs,
  HOLDING_FRACTION,
  type Mode,
  newSessionId,
  NOTICE_TIMEOUT_MS,
  type RoundTerms,
  shortSession,
  vectorDigest,
} from "./round.ts";
import { decodeResult, formatQuery, type Layout, type Query, vectorLayout } from "./query.ts";
import {
  assertThresholdConfig,
  assertThresholdLayout,
  evaluationPoint,
  reconstructShamirVector,
} from "./shamir.ts";
import { listenTls, type MessageConnection } from "./transport.ts";

/** Options for {@linkcode runHospital}. */
export interface HospitalOptions {
  identity: Identity;
  listen: HostPort;
  /** How many peers the round needs. */
  peers: number;
  /** What to compute. */
  query: Query;
  /** Decimal places of fixed-point inputs. */
  scale: number;
  /** The largest input R, scaled (R·10^scale). */
  max: bigint;
  /** The most rows one peer may hold (table queries). */
  maxRows: number;
  /** Shamir sharing with this threshold T; additive n-of-n when absent. */
  threshold?: number | undefined;
  /** Threshold mode: the fewest inputs a sum may cover (default 2). */
  minContributors?: number | undefined;
  /** The timeout for each phase, in milliseconds. */
  timeoutMs: number;
  /** Progress lines (never values). */
  log: (line: string) => void;
  /** Called once the listener is bound, with the actual address. */
  onListening?: (address: HostPort) => void;
  /** Progress of receiving long partial sums: label, elements done, elements in all. */
  onProgress?: (label: string, done: number, total: number) => void;
  /** Cancels the round from outside. */
  signal?: AbortSignal;
}

/** One peer's signed partial sum, kept as evidence. */
export interface SignedPartial {
  name: string;
  partial: Float64Array;
  signature: Uint8Array;
}

/** The outcome of a successful round. */
export interface RoundResult {
  /** The summed vector, exactly. */
  sum: Float64Array;
  /** The query's statistics decoded from it. */
  result: Record<string, unknown>;
  query: string;
  scale: number;
  maxRows: number;
  session: string;
  p: bigint;
  max: bigint;
  mode: Mode;
  threshold: number;
  participants: Participant[];
  contributors: string[];
  partials: SignedPartial[];
  hospital: { name: string; cert: string };
  /** Milliseconds from sending START to having the result. */
  startToResultMs: number;
  /** Frame bytes the hospital received and sent. */
  bytesReceived: number;
  bytesSent: number;
}

interface PeerSlot {
  party: VerifiedParty;
  address: string;
  conn: MessageConnection;
  /** Still connected: a peer that crashed in threshold mode is dropped. */
  live: boolean;
  holding?: string[];
}

/** Runs one round as the hospital and returns its result, or throws {@linkcode RoundAbortedError}. */
export async function runHospital(options: HospitalOptions): Promise<RoundResult> {
  // Refuse terms that cannot be represented exactly before listening. A
  // smaller roster (a threshold round's join deadline) can only need fewer
  // residues, so a threshold round whose full roster needs none never will.
  const layout = vectorLayout(options.query, {
    max: options.max,
    maxRows: options.maxRows,
    participants: options.peers,
  });
  if (options.threshold !== undefined) {
    assertThresholdLayout(layout);
    assertThresholdConfig(options.peers, options.threshold, options.minContributors ?? 2);
  }
  return await new HospitalRound(options).run();
}

type Phase = "joining" | "sharing" | "aggregating" | "finished";

class HospitalRound {
  #options: HospitalOptions;
  #mode: Mode;
  #phase: Phase = "joining";
  #slots = new Map<string, PeerSlot>();
  #connections = new Set<MessageConnection>();
  /** Aborted when the round ends, for any reason: stops every reader. */
  #stop = new AbortController();
  #failure = deferred<never>();
  /** The current phase's goal, re-checked whenever something arrives. */
  #goal: { done: Deferred<void>; reached: () => boolean } | undefined;
  #session = "";
  #names: string[] = [];
  #contributors: string[] = [];
  #asked = new Set<string>();
  #partials = new Map<string, SignedPartial>();
  #bytes = { sent: 0, received: 0 };
  #dimension = 0;
  /** How components become elements; fixed at START from the roster's size, as each peer does. */
  #layout: Layout | undefined;
  /** Elements of partial sums received so far, over all peers, for the progress bar. */
  #elementsReceived = 0;

  constructor(options: HospitalOptions) {
    this.#options = options;
    this.#mode = options.threshold === undefined ? "additive" : "threshold";
  }

  get #terms(): RoundTerms {
    return {
      session: this.#session,
      mode: this.#mode,
      threshold: this.#options.threshold ?? this.#names.length,
      query: formatQuery(this.#options.query, this.#options.scale),
      scale: this.#options.scale,
      participants: this.#names,
      contributors: this.#contributors,
    };
  }

  async run(): Promise<RoundResult> {
    const { identity, log, peers, timeoutMs, signal } = this.#options;
    const listener = await listenTls(this.#options.listen, identity.certPem, identity.keyPem, {
      handshakeTimeoutMs: handshakeTimeoutMs(timeoutMs),
      onRefused: (remote, reason) => log(`refused connection from ${remote}: ${reason}`),
    });
    this.#options.onListening?.(listener.address);
    const accepting = listener.serve((conn) => this.#serve(conn));
    const onCancel = () => this.#fail("Cancelled");
    signal?.addEventListener("abort", onCancel, { once: true });
    try {
      log(
        `waiting for ${peers} peers to join (${this.#describeMode()}, timeout ${
          formatSeconds(timeoutMs)
        })`,
      );
      await this.#joinPhase();
      const started = performance.now();
      await this.#start();
      if (this.#mode === "threshold") await this.#agreeContributors(started);
      const sum = await this.#aggregatePhase(started);
      const startToResultMs = performance.now() - started;
      this.#phase = "finished";
      await this.#broadcast(this.#names, (name) => ({
        type: "done",
        session: this.#session,
        from: identity.name,
        to: name,
      }));
      for (const slot of this.#slots.values()) {
        this.#bytes.sent += slot.conn.bytesSent;
        this.#bytes.received += slot.conn.bytesReceived;
      }
      return {
        sum,
        result: decodeResult(this.#options.query, sum, this.#options.scale, this.#layout),
        query: this.#terms.query,
        scale: this.#options.scale,
        maxRows: this.#options.maxRows,
        session: this.#session,
        p: P_BIG,
        max: this.#options.max,
        mode: this.#mode,
        threshold: this.#terms.threshold,
        participants: this.#names.map((name) => {
          const slot = this.#slots.get(name)!;
          return { name, address: slot.address, cert: slot.party.certPem };
        }),
        contributors: [...this.#contributors],
        partials: [...this.#partials.values()].sort((a, b) => a.name < b.name ? -1 : 1),
        hospital: { name: identity.name, cert: identity.certPem },
        startToResultMs,
        bytesReceived: this.#bytes.received,
        bytesSent: this.#bytes.sent,
      };
    } catch (error) {
      const reason = describeError(error);
      this.#phase = "finished";
      await this.#broadcast([...this.#slots.keys()], (name) => ({
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

  #describeMode(): string {
    const { threshold, minContributors = 2 } = this.#options;
    return threshold === undefined
      ? "additive n-of-n"
      : `threshold ${threshold}, at least ${minContributors} contributors`;
  }

  /**
   * Waits until `reached()` holds (re-checked on every event), the round
   * fails, or `ms` pass. Returns false on timeout.
   */
  async #waitFor(reached: () => boolean, ms: number): Promise<boolean> {
    const done = deferred<void>();
    this.#goal = { done, reached };
    this.#progress();
    try {
      return await raceDeadline(done.promise, this.#failure, ms, this.#stop.signal) !== TIMED_OUT;
    } finally {
      this.#goal = undefined;
    }
  }

  /** Something changed: finish the current wait if its goal is reached. */
  #progress(): void {
    const goal = this.#goal;
    if (goal && !goal.done.settled && goal.reached()) goal.done.resolve();
  }

  #fail(reason: string): void {
    if (!this.#failure.settled) this.#failure.reject(new RoundAbortedError(reason));
  }

  async #joinPhase(): Promise<void> {
    const { peers, timeoutMs, threshold, log } = this.#options;
    const complete = await this.#waitFor(() => this.#slots.size >= peers, timeoutMs);
    this.#phase = this.#mode === "additive" ? "aggregating" : "sharing";
    const joined = [...this.#slots.keys()].sort();
    if (complete) return;
    const what = `waiting for peers to join (${joined.length} of ${peers} joined${
      joined.length ? ": " + joined.join(", ") : ""
    })`;
    if (threshold === undefined || joined.length < threshold) {
      throw new RoundAbortedError(`Timed out after ${formatSeconds(timeoutMs)} ${what}`);
    }
    log(
      `join deadline passed: starting with ${joined.length} of ${peers} peers (threshold ${threshold})`,
    );
  }

  async #start(): Promise<void> {
    const { identity, log, max, timeoutMs } = this.#options;
    this.#session = newSessionId();
    this.#names = [...this.#slots.keys()].sort();
    this.#layout = vectorLayout(this.#options.query, {
      max,
      maxRows: this.#options.maxRows,
      participants: this.#names.length,
    });
    this.#dimension = this.#layout.dimension;
    if (this.#mode === "additive") this.#contributors = [...this.#names];
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
        p: P_BIG,
        query: this.#terms.query,
        scale: this.#options.scale,
        max,
        maxRows: this.#options.maxRows,
        mode: this.#mode,
        threshold: this.#terms.threshold,
        deadlineMs: timeoutMs,
        participants,
      }, deadlineSignal(HANDSHAKE_TIMEOUT_MS, `sending START to ${name}`, this.#stop.signal))
        .catch((error) => this.#depart(name, error))
    ));
  }

  /**
   * Threshold mode: collect every live peer's report of whose shares it holds,
   * fix the contributor set C (every sender whose share all reporting peers
   * hold, so a peer that crashed after sharing still counts) and send it,
   * signed, in FINALIZE.
   */
  async #agreeContributors(started: number): Promise<void> {
    const { identity, log, timeoutMs, threshold = 0, minContributors = 2 } = this.#options;
    const live = () => [...this.#slots.values()].filter((s) => s.live);
    const allReported = await this.#waitFor(
      () => live().every((s) => s.holding !== undefined),
      started + timeoutMs * HOLDING_FRACTION - performance.now(),
    );
    const reporters = this.#names.filter((n) => {
      const slot = this.#slots.get(n)!;
      return slot.live && slot.holding !== undefined;
    });
    if (!allReported) log(`holding deadline passed: ${reporters.length} peers reported`);
    if (reporters.length < threshold) {
      throw new RoundAbortedError(
        `Cannot finish round: only ${reporters.length} peers remain (${
          reporters.join(", ") || "none"
        }), ` +
          `threshold ${threshold}`,
      );
    }
    this.#contributors = this.#names.filter((sender) =>
      reporters.every((j) => this.#slots.get(j)!.holding!.includes(sender))
    );
    if (this.#contributors.length < minContributors) {
      throw new RoundAbortedError(
        `Cannot finish round: only ${this.#contributors.length} contributors ` +
          `(${this.#contributors.join(", ") || "none"}), fewer than the minimum ${minContributors}`,
      );
    }
    log(`contributors: ${this.#contributors.join(", ")}`);
    this.#phase = "aggregating";
    const sig = await signTranscript(
      identity.privateKey,
      "finalize",
      finalizeFields(this.#session, identity.name, this.#contributors),
    );
    for (const name of reporters) this.#asked.add(name);
    await this.#broadcast(reporters, (name) => ({
      type: "finalize",
      session: this.#session,
      from: identity.name,
      to: name,
      contributors: this.#contributors,
      sig,
    }));
  }

  /** Collects partial sums and reconstructs the sum over the contributors. */
  async #aggregatePhase(started: number): Promise<Float64Array> {
    const { log, timeoutMs, threshold } = this.#options;
    if (this.#mode === "additive") {
      const complete = await this.#waitFor(
        () => this.#partials.size === this.#names.length,
        timeoutMs,
      );
      if (!complete) {
        const missing = this.#names.filter((n) => !this.#partials.has(n));
        throw new RoundAbortedError(
          `Timed out after ${formatSeconds(timeoutMs)} waiting for partial sums (missing from ${
            missing.join(", ")
          })`,
        );
      }
      log(`all ${this.#names.length} partial sums verified; sum reconstructed`);
      const sum = new Float64Array(this.#dimension);
      const { segments } = this.#layout!;
      for (const p of this.#partials.values()) addSegmentsInto(sum, p.partial, segments);
      return sum;
    }
    const t = threshold!;
    await this.#waitFor(
      () => [...this.#asked].every((n) => this.#partials.has(n) || !this.#slots.get(n)!.live),
      started + timeoutMs - performance.now(),
    );
    if (this.#partials.size < t) {
      throw new RoundAbortedError(
        `Cannot finish round: only ${this.#partials.size} partial sums arrived, threshold ${t}`,
      );
    }
    const points = [...this.#partials.values()].map((p) => ({
      x: evaluationPoint(this.#names.indexOf(p.name)),
      y: p.partial,
    }));
    const sum = reconstructShamirVector(points, t);
    log(
      this.#partials.size > t
        ? `${this.#partials.size} partial sums verified and consistent; sum reconstructed`
        : `${t} partial sums verified (exactly T: no spare to cross-check); sum reconstructed`,
    );
    return sum;
  }

  /** A per-vector progress callback feeding one bar for all partial sums; none for short ones. */
  #progressOf(): ((done: number) => void) | undefined {
    const report = this.#options.onProgress;
    if (!report || this.#dimension < 1 << 16) return undefined;
    const total = this.#dimension *
      (this.#mode === "additive" ? this.#names.length : this.#asked.size);
    let previous = 0;
    return (done) => {
      this.#elementsReceived += done - previous;
      previous = done;
      report("receiving partial sums", this.#elementsReceived, total);
    };
  }

  /** Sends one message to each named peer that is connected; best effort, bounded in time. */
  async #broadcast(names: string[], make: (name: string) => Message): Promise<void> {
    await Promise.allSettled(names.map((name) => {
      const slot = this.#slots.get(name);
      if (!slot || slot.conn.closed) return Promise.resolve();
      return slot.conn.send(make(name), AbortSignal.timeout(NOTICE_TIMEOUT_MS));
    }));
  }

  async #serve(conn: MessageConnection): Promise<void> {
    const { identity, log, peers, timeoutMs } = this.#options;
    this.#connections.add(conn);
    let joinedAs: string | undefined;
    try {
      const first = deadlineSignal(
        handshakeTimeoutMs(timeoutMs),
        "in the handshake",
        this.#stop.signal,
      );
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
      this.#slots.set(party.name, { party, address: join.address, conn, live: true });
      log(
        `${party.name} joined from ${conn.remote}, shares at ${join.address} (${this.#slots.size}/${peers})`,
      );
      if (this.#slots.size === peers) {
        this.#phase = this.#mode === "additive" ? "aggregating" : "sharing";
      }
      this.#progress();
      await this.#readFromPeer(party.name, conn);
    } catch (error) {
      if (this.#phase === "finished" || this.#stop.signal.aborted) return;
      if (joinedAs === undefined) {
        log(`refused connection from ${conn.remote}: ${describeError(error)}`);
      } else {
        this.#depart(joinedAs, error);
      }
    } finally {
      conn.close();
      this.#connections.delete(conn);
    }
  }

  /**
   * A joined peer's connection ended with `error`. Breaking the protocol
   * aborts the round; going away is leaving (before START), an abort
   * (additive mode) or a dropout (threshold mode).
   */
  #depart(name: string, error: unknown): void {
    if (this.#phase === "finished") return;
    const slot = this.#slots.get(name);
    if (!slot || !slot.live) return;
    slot.conn.close();
    const reason = describeError(error);
    if (error instanceof ProtocolError || error instanceof AuthError) {
      this.#fail(`${name} broke the protocol: ${reason}`);
    } else if (this.#phase === "joining") {
      this.#slots.delete(name);
      this.#options.log(`${name} left before the round started: ${reason}`);
    } else if (this.#mode === "additive") {
      this.#fail(`lost the connection to ${name}: ${reason}`);
    } else {
      slot.live = false;
      this.#options.log(`${name} dropped out: ${reason}`);
      this.#progress();
    }
  }

  /** Reads a joined peer's messages until the round ends. */
  async #readFromPeer(name: string, conn: MessageConnection): Promise<void> {
    const { identity } = this.#options;
    const slot = this.#slots.get(name)!;
    for (;;) {
      const message = await conn.receive(this.#stop.signal);
      if (message.type === "abort") {
        if (this.#phase === "joining") {
          this.#slots.delete(name);
          this.#options.log(
            `${name} left before the round started: ${describeError(message.reason)}`,
          );
          return;
        }
        this.#fail(`${name} aborted the round: ${describeError(message.reason)}`);
        return;
      }
      if (
        (message.type === "holding" && this.#phase === "sharing" && slot.holding === undefined) ||
        (message.type === "agg" && this.#phase === "aggregating")
      ) {
        if (message.session !== this.#session) {
          throw new ProtocolError(`${message.type} is for another session`);
        }
        if (message.from !== name || message.to !== identity.name) {
          throw new ProtocolError(`${message.type} names the wrong sender or recipient`);
        }
      } else {
        throw new ProtocolError(`Unexpected ${message.type} message`);
      }
      if (message.type === "holding") {
        if (
          !message.senders.includes(name) || message.senders.some((s) => !this.#names.includes(s))
        ) {
          throw new ProtocolError(
            "Holding report lists senders outside the round, or not the peer itself",
          );
        }
        slot.holding = message.senders;
        this.#options.log(
          `${name} holds shares from ${message.senders.length} of ${this.#names.length} participants`,
        );
      } else {
        if (this.#partials.has(name)) throw new ProtocolError("Second partial sum in one session");
        if (this.#mode === "threshold" && !this.#asked.has(name)) {
          throw new ProtocolError("Partial sum from a peer that was not asked for one");
        }
        if (message.contributors.join(",") !== this.#contributors.join(",")) {
          throw new ProtocolError("Partial sum is over another contributor set");
        }
        if (message.length !== this.#dimension) {
          throw new ProtocolError(
            `Partial sum of ${message.length} elements; the query has ${this.#dimension}`,
          );
        }
        // The vector follows in chunks; the round's deadline bounds the wait.
        const partial = await conn.receiveVector(
          message.length,
          this.#stop.signal,
          this.#progressOf(),
        );
        // Chunks are checked against p1 only; a residue modulo p2 or p3 must
        // be below its own modulus, so every vector has one encoding and the
        // sum (and the receipt) stays canonical.
        if (!isSegmentedFieldVector(partial, this.#layout!.segments)) {
          throw new ProtocolError("Partial sum has an element that is not below its modulus");
        }
        const fields = aggregateFields(
          this.#terms,
          name,
          identity.name,
          partial.length,
          await vectorDigest(partial),
        );
        if (!(await verifyTranscript(slot.party.publicKey, message.sig, "aggregate", fields))) {
          throw new AuthError("Invalid signature on partial sum");
        }
        this.#partials.set(name, { name, partial, signature: message.sig });
        this.#options.log(`partial sum from ${name} verified (${this.#partials.size})`);
      }
      this.#progress();
    }
  }
}
