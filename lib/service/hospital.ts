/**
 * The hospital as a service: it listens with mutual TLS, keeps every
 * authenticated peer agent connected, and runs one round per question, one
 * at a time, over the agents connected then that hold the variable. Each
 * round is a fresh HospitalRound (fresh session, fresh keys) driven over the
 * standing connections; a failed round is reported to the asker and the
 * service goes on. Before INVITE the service asks each agent, with
 * `describe`, whether it holds the variable and at which declared range
 * (docs/protocol.md §16), and builds the terms from the answers: it waits
 * for those answers only until the holders the question needs have answered
 * or a short describe deadline passes, and leaves out a holder whose declared
 * range cannot fit the round, so one agent cannot stall or fail every
 * question. Between rounds it sends each agent an `idle` heartbeat every H
 * (§16.2), so an agent on a dead path notices and reconnects.
 *
 * @module
 */

import { abortable, deadlineSignal, sleep } from "../deadline.ts";
import { randomHex } from "../encoding.ts";
import { describeError, RoundAbortedError } from "../errors.ts";
import { IDLE_INTERVAL_MS } from "../agent/liveness.ts";
import { type Identity, verifyPartyCertificate } from "../identity.ts";
import type { HostPort } from "../names.ts";
import type { Connection } from "../net/connection.ts";
import type { Server } from "../net/server.ts";
import { HospitalRound } from "../protocol/hospital/round.ts";
import type { Outbox, VerifyParty } from "../protocol/types.ts";
import { parseQuery, type Query } from "../query.ts";
import { createStarReceipt, writeReceiptFile } from "../receipt.ts";
import { listenForPeers, type StarHospitalResult } from "../runtime/hospital.ts";
import { flushWrites, phaseDeadline, PhaseTimer } from "../runtime/phase_timer.ts";
import { stallMs } from "../runtime/upload_watchdog.ts";
import { releaseGarbage } from "../garbage.ts";
import { acceptFullFrames, UNADMITTED_UNREAD_CAP, UploadControl } from "../runtime/uploads.ts";
import { assertThresholdFloors, roundTerms } from "../runtime/terms.ts";
import {
  decodePayload,
  encodeChunk,
  encodeIdle,
  encodeMessage,
  type Message,
  type MessageOf,
  type Payload,
  type Terms,
} from "../wire/messages.ts";
import {
  chooseHolders,
  commonDimension,
  type CommonRange,
  commonRange,
  type Declaration,
} from "./leave_out.ts";
import { signReleased, statisticsText } from "./released.ts";
import { starReport } from "./report.ts";

/** A round that could not be run or did not finish; the message says why. */
export class RoundFailedError extends Error {
  override name = "RoundFailedError";
}

/** One question, as `sumshare ask` sends it. */
export interface AskRequest {
  variable: string;
  /** The query spec without the variable: `sum`, `histogram:0:400:20`, `vector`. */
  query: string;
  /** Wait until this many agents holding the variable are connected. */
  peers?: number | undefined;
  threshold?: number | undefined;
  minContributors?: number | undefined;
  /** How long to wait for `peers` agents. */
  timeoutMs: number;
}

/** Options for {@linkcode HospitalService.start}. */
export interface ServiceOptions {
  identity: Identity;
  listen: HostPort;
  /** Each phase's deadline. */
  phaseTimeoutMs: number;
  /** Where each completed round's receipt goes (0600 files); none if absent. */
  receiptsDir?: string | undefined;
  log: (line: string) => void;
  /**
   * H, the interval of the `idle` heartbeat between rounds (§16.2); default
   * 15 s, the most an agent allows for. Smaller in tests.
   */
  idleMs?: number;
  /**
   * The longest wait for `description` answers when the asker named no
   * `peers` (and the bound when too few holders answer); default 3 s, at
   * most the phase deadline. An answer is a look-up in the agent's config.
   */
  describeMs?: number;
}

/** Default of {@linkcode ServiceOptions.describeMs}. */
const DESCRIBE_MS = 3_000;

/**
 * How much longer the describe step waits for the other agents once the
 * asker's `peers` holders answered. Why not stop at once: the round's set
 * would be whichever holders happened to answer first, and an agent pins
 * its answered set (docs/protocol.md §16 rule 4), so a slower holder could
 * be kept out of that data version for good, and the next question over
 * another fastest set refused.
 */
const DESCRIBE_GRACE_MS = 300;

interface Peer {
  name: string;
  conn: Connection;
  certPem: string;
  raised: boolean;
  /**
   * What its reads and writes wait on: follows the service's stop, but is
   * its own, since one signal with a listener per agent made every wait
   * scan them all (Deno's EventTarget).
   */
  signal: AbortSignal;
}

/** What the service routes a connection's frames to while a question is being answered. */
interface Current {
  session: string;
  /** Agents asked to describe the variable, and their answers. */
  describing?: Map<string, (answer: MessageOf<"description"> | undefined) => void> | undefined;
  round?: HospitalRound;
  /** The connection of each invitee when it was invited. */
  links?: Map<string, Peer>;
  /**
   * Invitees whose part of the round is over: they refused or aborted, the
   * round dropped them (it sent them `abort`), or their ATTEST came. Nothing
   * of the round but `released` goes to them now, so the heartbeat resumes.
   */
  over?: Set<string>;
  /** What each refusing or aborting agent said. */
  said: Map<string, string>;
  /** The round's uploads: read caps, the watchdog, chunk room (lib/runtime/uploads.ts). */
  uploads?: UploadControl;
  watch?: () => void;
}

/** The serving hospital; see the module documentation. */
export class HospitalService {
  #options: ServiceOptions;
  #server: Server;
  #peers = new Map<string, Peer>();
  #certificates = new Map<string, string>();
  #stop = new AbortController();
  #queue: Promise<unknown> = Promise.resolve();
  #current: Current | undefined;
  #changed: (() => void)[] = [];

  private constructor(options: ServiceOptions, server: Server) {
    this.#options = options;
    this.#server = server;
  }

  /** Listens and starts accepting agents. */
  static async start(options: ServiceOptions): Promise<HospitalService> {
    const { identity } = options;
    const certificates = new Map<string, string>();
    const server = await listenForPeers(identity, options.listen, {
      log: options.log,
      certificates,
    });
    const service = new HospitalService(options, server);
    service.#certificates = certificates;
    void service.#acceptLoop();
    return service;
  }

  /** The address the listener is bound to. */
  get address(): HostPort {
    return { hostname: this.#server.hostname, port: this.#server.port };
  }

  /** The names of the connected agents, sorted. */
  get connected(): string[] {
    return [...this.#peers.keys()].sort();
  }

  /** Stops listening and closes every connection. */
  close(): void {
    this.#stop.abort(new RoundAbortedError("the hospital stopped"));
    this.#server.close();
    for (const peer of this.#peers.values()) peer.conn.close();
  }

  /** Answers one question; questions are answered one at a time, in order. */
  ask(request: AskRequest): Promise<Record<string, unknown>> {
    const run = this.#queue.then(() => this.#answer(request));
    this.#queue = run.catch(() => {});
    return run;
  }

  async #acceptLoop(): Promise<void> {
    const { log } = this.#options;
    while (!this.#stop.signal.aborted) {
      let conn: Connection;
      try {
        conn = await this.#server.accept(this.#stop.signal);
      } catch (error) {
        if (this.#stop.signal.aborted) return;
        log(`accept failed: ${describeError(error)}`);
        continue;
      }
      const name = conn.party!;
      const peer: Peer = {
        name,
        conn,
        certPem: this.#certificates.get(name)!,
        raised: false,
        signal: AbortSignal.any([this.#stop.signal]),
      };
      const earlier = this.#peers.get(name);
      if (earlier) {
        log(`${name} connected again; its earlier connection is closed`);
        earlier.conn.close();
      }
      this.#peers.set(name, peer);
      log(`${name} connected (${this.#peers.size} connected)`);
      this.#notify();
      void this.#readLoop(peer);
      void this.#heartbeat(peer);
    }
  }

  /**
   * Sends `peer` an `idle` frame at once and then every H while it stays
   * connected, except while its part of the round in progress is open:
   * nothing but the round's messages reaches a peer inside its round part
   * (§16.2). Once that part is over (it refused, was dropped, or attested)
   * the beat resumes, since the rest of the round can outlast the agent's
   * 3·H watchdog (review 4, R4-1).
   */
  async #heartbeat(peer: Peer): Promise<void> {
    const every = this.#options.idleMs ?? IDLE_INTERVAL_MS;
    const idle = encodeIdle();
    while (!peer.signal.aborted && this.#peers.get(peer.name) === peer) {
      if (!this.#inRoundPart(peer)) {
        try {
          // A peer that cannot take 22 bytes within a phase deadline is as good as gone. Not
          // tied to the service's stop (close() closes the connection): nothing accumulates there.
          await peer.conn.write(
            idle,
            AbortSignal.timeout(Math.max(every, this.#options.phaseTimeoutMs)),
          );
        } catch (error) {
          if (!peer.signal.aborted) {
            this.#options.log(`${peer.name}: ${describeError(error)}`);
            peer.conn.close();
          }
          return;
        }
      }
      await sleep(every, peer.signal);
    }
  }

  /** Whether `peer` is an invitee of the round in progress whose part of it is not over. */
  #inRoundPart(peer: Peer): boolean {
    const current = this.#current;
    return current?.links?.get(peer.name) === peer && !current.over?.has(peer.name);
  }

  #notify(): void {
    for (const wake of this.#changed.splice(0)) wake();
  }

  async #readLoop(peer: Peer): Promise<void> {
    try {
      let payload: Uint8Array | undefined;
      for (;;) {
        payload = await peer.conn.readFrame(peer.signal);
        await this.#handleFrame(peer, payload);
        // Let go of the frame before waiting for the next one: a suspended
        // async function keeps what it refers to (see the one-shot
        // hospital's readLoop: 1 MiB a peer held through a round).
        payload = undefined;
      }
    } catch (error) {
      if (this.#stop.signal.aborted) return;
      this.#options.log(`${peer.name}: ${describeError(error)}`);
      peer.conn.close();
      if (this.#peers.get(peer.name) === peer) {
        this.#peers.delete(peer.name);
        this.#notify();
      }
      const current = this.#current;
      current?.describing?.get(peer.name)?.(undefined);
      if (current?.round && current.links?.get(peer.name) === peer && !current.round.outcome) {
        current.uploads?.lost(peer.name);
        await current.round.disconnected(peer.name);
        current.watch?.();
      }
    }
  }

  /** One frame from `peer`; what is decoded lives only in this call. */
  async #handleFrame(peer: Peer, payload: Uint8Array): Promise<void> {
    const decoded = decodePayload(payload);
    if (!peer.raised) {
      // Chunks only once admitted (PROCEED raises the cap); see uploads.ts.
      acceptFullFrames(peer.conn);
      peer.raised = true;
    }
    await this.#route(peer, decoded, payload.byteLength);
  }

  async #route(peer: Peer, decoded: Payload, frameBytes: number): Promise<void> {
    const current = this.#current;
    const inRound = current?.round !== undefined && current.links?.get(peer.name) === peer;
    if (decoded.kind === "chunk") {
      if (inRound) {
        const index = decoded.chunk.index;
        current!.uploads?.chunkArriving(peer.name, index);
        await current!.round!.chunk(peer.name, decoded.chunk);
        current!.uploads?.chunkHandled(peer.name, index, frameBytes);
        current!.watch?.();
      } else {
        // Not for a round in progress, and dead now all the same (see garbage.ts).
        releaseGarbage(2 * frameBytes);
      }
      return;
    }
    const message = decoded.message;
    if (current && message.session === current.session) {
      if (message.type === "refuse" || message.type === "abort") {
        current.said.set(peer.name, message.reason);
      }
      const answer = current.describing?.get(peer.name);
      if (answer && (message.type === "description" || message.type === "refuse")) {
        answer(message.type === "description" ? message : undefined);
        return;
      }
      if (inRound && message.type !== "description") {
        // Its last message of the round: nothing but `released` goes to it now.
        if (message.type === "refuse" || message.type === "abort" || message.type === "attest") {
          current.over?.add(peer.name);
        }
        current.uploads?.receiving(peer.name, message);
        await current.round!.message(peer.name, message);
        current.watch?.();
        return;
      }
    }
    this.#options.log(`ignored ${message.type} from ${peer.name}: not for a round in progress`);
  }

  /** Waits until `count` agents are connected, within `ms`. */
  async #waitForPeers(count: number, ms: number): Promise<void> {
    const deadline = deadlineSignal(ms, `waiting for ${count} peers`, this.#stop.signal);
    while (this.#peers.size < count) {
      const changed = new Promise<void>((resolve) => this.#changed.push(resolve));
      try {
        await abortable(changed, deadline);
      } catch (cause) {
        throw new RoundFailedError(
          `${describeError(cause)}: ${this.#peers.size} of ${count} connected`,
          { cause },
        );
      }
    }
  }

  async #answer(request: AskRequest): Promise<Record<string, unknown>> {
    const { log } = this.#options;
    if (request.peers !== undefined) await this.#waitForPeers(request.peers, request.timeoutMs);
    const session = randomHex(16);
    const current: Current = { session, said: new Map() };
    this.#current = current;
    try {
      const need = request.peers ?? 2;
      const offers = await this.#describe(current, request.variable, request.peers);
      const answered = [...offers.keys()].sort();
      if (answered.length < need) {
        throw new RoundFailedError(
          `Cannot run round: ${answered.length} connected peer(s) answer for ${
            JSON.stringify(request.variable)
          }${answered.length ? ` (${answered.join(", ")})` : ""}; ${need} needed${saying(current)}`,
        );
      }
      const { terms, query, leftOut: why } = this.#terms(request, offers);
      const leftOut = [...why.keys()].sort();
      for (const name of leftOut) log(`round ${session}: left out ${name}: ${why.get(name)}`);
      const holders = answered.filter((name) => !why.has(name));
      if (holders.length < need) {
        throw new RoundFailedError(
          `Cannot run round: ${holders.length} peer(s) for ${
            JSON.stringify(request.variable)
          } declare ${
            request.query === "vector" ? "a length and range that fit" : "a range that fits"
          }; ${need} needed (left out: ${leftOut.join(", ")})`,
        );
      }
      log(
        `round ${session}: ${request.variable} ${terms.query} over ${holders.join(", ")}`,
      );
      const result = await this.#runRound(current, holders, terms);
      const report = {
        variable: request.variable,
        ...starReport(result, terms, query),
        ...(leftOut.length ? { leftOut } : {}),
      };
      await this.#release(current, request.variable, result, report.result).catch((error) =>
        log(`round ${session}: released result not sent: ${describeError(error)}`)
      );
      if (this.#options.receiptsDir !== undefined) {
        const path = `${this.#options.receiptsDir}/${session}.json`;
        try {
          const receipt = await createStarReceipt(
            result.outcome.evidence,
            result.outcome.result,
            this.#options.identity.privateKey,
          );
          await writeReceiptFile(path, receipt);
          log(`round ${session}: receipt written to ${path}`);
          return { ...report, receipt: path };
        } catch (error) {
          // The result is not lost for want of a receipt: the asker gets both facts.
          log(`round ${session}: no receipt: ${describeError(error)}`);
          return { ...report, receiptError: describeError(error) };
        }
      }
      return report;
    } catch (error) {
      log(`round ${session} failed: ${describeError(error)}`);
      if (error instanceof RoundFailedError) throw error;
      throw new RoundFailedError(describeError(error), { cause: error });
    } finally {
      this.#current = undefined;
    }
  }

  /**
   * Sends each agent of the contributor set still on its round's connection
   * the signed record of what was released (docs/protocol.md §16.1), so each
   * site can see what was computed from its data. The result is out already:
   * an agent that cannot be reached is logged, nothing more.
   */
  async #release(
    current: Current,
    variable: string,
    round: StarHospitalResult,
    statistics: Record<string, unknown>,
  ): Promise<void> {
    const { evidence } = round.outcome;
    const message = await signReleased({
      session: current.session,
      startHash: evidence.startHash,
      variable,
      query: evidence.terms.query,
      set: evidence.set,
      resultDigest: evidence.resultDigest,
      statistics: statisticsText(statistics),
    }, this.#options.identity.privateKey);
    const payload = encodeMessage(message);
    const writes: Promise<void>[] = [];
    for (const name of evidence.set) {
      const peer = current.links?.get(name);
      if (!peer || this.#peers.get(name) !== peer) continue;
      writes.push(
        peer.conn.write(payload, peer.signal).catch((error) =>
          this.#options.log(`${name}: released result not sent: ${describeError(error)}`)
        ),
      );
    }
    await flushWrites(writes);
    if (message.statistics === undefined) {
      this.#options.log(
        `round ${current.session}: the statistics are too long to release; sent the digest`,
      );
    }
  }

  /**
   * Asks every connected agent whether it holds `variable`; its declared
   * ranges by name. The wait ends when every agent answered, a short grace
   * after `peers` holders did (the asker needs no more), or at the describe
   * deadline: an agent that stays silent delays a question by that bound only.
   */
  async #describe(
    current: Current,
    variable: string,
    peers: number | undefined,
  ): Promise<Map<string, MessageOf<"description">>> {
    const offers = new Map<string, MessageOf<"description">>();
    const waits: Promise<void>[] = [];
    const enough = Promise.withResolvers<void>();
    let grace: ReturnType<typeof setTimeout> | undefined;
    current.describing = new Map();
    for (const peer of this.#peers.values()) {
      waits.push(
        new Promise<void>((resolve) => {
          current.describing!.set(peer.name, (answer) => {
            current.describing!.delete(peer.name);
            if (answer && answer.variable === variable) offers.set(peer.name, answer);
            if (peers !== undefined && offers.size >= peers && grace === undefined) {
              grace = setTimeout(() => enough.resolve(), DESCRIBE_GRACE_MS);
            }
            resolve();
          });
        }),
      );
      void peer.conn.write(
        encodeMessage({ type: "describe", session: current.session, variable }),
        peer.signal,
      ).catch(() => current.describing?.get(peer.name)?.(undefined));
    }
    const ms = Math.min(this.#options.phaseTimeoutMs, this.#options.describeMs ?? DESCRIBE_MS);
    const deadline = deadlineSignal(ms, "", this.#stop.signal);
    const started = performance.now();
    await abortable(Promise.race([Promise.all(waits), enough.promise]), deadline).catch(() => {});
    clearTimeout(grace);
    const unanswered = [...current.describing.keys()].sort();
    current.describing = undefined;
    this.#options.log(
      `round ${current.session}: ${offers.size} holder(s) answered describe in ${
        ((performance.now() - started) / 1000).toFixed(2)
      } s${unanswered.length ? `; not waited for: ${unanswered.join(", ")}` : ""}`,
    );
    return offers;
  }

  /**
   * The round's terms from the holders' declared ranges: the widest scale,
   * range and rows. A holder whose declaration makes the layout impossible
   * (R at or past p) is left out instead of failing the round for everyone
   * (lib/service/leave_out.ts: the most holders that fit together, so one
   * absurd declaration cannot choose which honest holder goes), and so is, for a vector, a
   * holder declaring another length than most. Each left-out holder comes
   * with why, for the log.
   */
  #terms(
    request: AskRequest,
    offers: Map<string, MessageOf<"description">>,
  ): {
    terms: Terms & { deadlines: NonNullable<Terms["deadlines"]> };
    query: Query;
    leftOut: Map<string, string>;
  } {
    const leftOut = new Map<string, string>();
    let spec = request.query;
    let holders: Map<string, Declaration> = offers;
    if (spec === "vector") {
      const common = commonDimension(offers);
      if (common === undefined) {
        throw new RoundFailedError(
          `Cannot run round: ${request.variable} is not a vector of one length at most peers`,
        );
      }
      for (const name of common.leftOut) {
        leftOut.set(name, "its declared dimension is not the one most holders declared");
      }
      holders = new Map(common.kept.map((name) => [name, offers.get(name)!]));
      spec = `vector:${common.dimension}`;
    }
    let range = commonRange([...holders.values()]);
    try {
      this.#build(request, spec, range, false);
    } catch (cause) {
      const fits = (range: CommonRange) => {
        try {
          this.#build(request, spec, range, false);
          return true;
        } catch {
          return false;
        }
      };
      const choice = chooseHolders(holders, fits);
      // No holder fits even alone: the question itself cannot be answered.
      if (choice.kept.length === 0) throw cause;
      for (const name of choice.leftOut) {
        leftOut.set(
          name,
          choice.contested.includes(name)
            ? "its declared range fits a round as large only where another holder's does not"
            : "its declared range (scale, max, max_rows) does not fit a round with the others",
        );
      }
      // The range at the scale the choice tested, not recomputed: the round runs at that scale.
      range = choice.range!;
    }
    return { ...this.#build(request, spec, range, true), leftOut };
  }

  /** Terms for `range`; with the asker's threshold floors checked when `floors`. */
  #build(
    request: AskRequest,
    spec: string,
    range: CommonRange,
    floors: boolean,
  ): { terms: Terms & { deadlines: NonNullable<Terms["deadlines"]> }; query: Query } {
    const { scale, max, maxRows, peers } = range;
    try {
      const query = parseQuery(spec, scale);
      if (floors && request.threshold !== undefined) {
        assertThresholdFloors(peers, request.threshold, request.minContributors ?? 2);
      }
      const terms = roundTerms({
        query,
        scale,
        max,
        maxRows,
        peers,
        threshold: request.threshold,
        minContributors: request.minContributors ?? 2,
        phaseTimeoutMs: this.#options.phaseTimeoutMs,
      });
      return { terms, query };
    } catch (cause) {
      // Said once: the layout's own errors already start so, and describeError
      // drops a cause that repeats its error's message.
      const text = (cause as Error).message;
      throw new RoundFailedError(
        text.startsWith("Cannot run round") ? text : `Cannot run round: ${text}`,
        { cause },
      );
    }
  }

  /** Drives one HospitalRound over the holders' standing connections. */
  async #runRound(
    current: Current,
    holders: string[],
    terms: Terms & { deadlines: NonNullable<Terms["deadlines"]> },
  ): Promise<StarHospitalResult> {
    const { identity, log } = this.#options;
    const links = new Map<string, Peer>();
    for (const name of holders) {
      const peer = this.#peers.get(name);
      if (peer) links.set(name, peer);
    }
    const lastWrite = new Map<string, Promise<void>>();
    const write = (to: string, payload: Uint8Array) => {
      const peer = links.get(to);
      if (!peer) return;
      const done = peer.conn.write(payload, peer.signal).catch((error) => {
        log(`${to}: ${describeError(error)}`);
        peer.conn.close();
      });
      lastWrite.set(to, done);
    };
    const over = new Set<string>();
    // Declared before the round (the outbox needs it); reports to the round once it exists.
    let stalled: (name: string) => void = () => {};
    const uploads = new UploadControl({
      dimension: terms.dimension,
      stallMs: stallMs(terms.deadlines.inputMs),
      connection: (name) => links.get(name)?.conn,
      onStall: (name) => stalled(name),
    });
    const outbox: Outbox = {
      send: (to, message: Message) => {
        // Dropped (or the round aborted): the round has nothing more for it.
        if (message.type === "abort") over.add(to);
        uploads.sending(to, message);
        write(to, encodeMessage(message));
      },
      sendChunk: (to, chunk) => write(to, encodeChunk(chunk.index, chunk.data)),
    };
    const verifyParty: VerifyParty = async (certPem, name, role) =>
      (await verifyPartyCertificate(certPem, identity.ca, name, { use: role })).publicKey;
    const round = new HospitalRound({
      name: identity.name,
      certPem: identity.certPem,
      signingKey: identity.privateKey,
      terms,
      invitees: [...links.values()].map((p) => ({ name: p.name, certPem: p.certPem })),
      outbox,
      verifyParty,
      log: (line) => log(`round ${current.session}: ${line}`),
      session: current.session,
    });
    // Until each is admitted (PROCEED), whatever an earlier round allowed.
    for (const peer of links.values()) {
      if (peer.raised) peer.conn.setMaxBufferedBytes(UNADMITTED_UNREAD_CAP);
    }
    let startedAt: number | undefined;
    const timer = new PhaseTimer(
      (phase) => phaseDeadline(terms.deadlines, phase),
      (phase) => {
        log(`round ${current.session}: the ${phase} phase's deadline passed`);
        void round.timeout().then(watch);
      },
    );
    stalled = (name) => void round.stalled(name).then(watch);
    function watch(): void {
      if (startedAt === undefined && round.phase === "confirm") startedAt = performance.now();
      timer.update(round.phase);
      uploads.phase(round.phase);
    }
    current.links = links;
    current.over = over;
    current.uploads = uploads;
    current.round = round;
    current.watch = watch;
    try {
      await round.start();
      watch();
      // An invitee that left before INVITE went out is lost at once.
      for (const [name, peer] of links) {
        if (this.#peers.get(name) !== peer) await round.disconnected(name);
      }
      watch();
      const outcome = await abortable(round.finished, this.#stop.signal);
      timer.stop();
      await flushWrites(lastWrite.values());
      if (outcome.kind === "aborted") {
        throw new RoundFailedError(`round aborted: ${outcome.reason}${saying(current)}`);
      }
      let bytesIn = 0;
      let bytesOut = 0;
      for (const peer of links.values()) {
        bytesIn += peer.conn.stats.bytesIn;
        bytesOut += peer.conn.stats.bytesOut;
      }
      return {
        outcome,
        session: round.session,
        participants: round.participants,
        startToResultMs: performance.now() - (startedAt ?? performance.now()),
        bytesIn,
        bytesOut,
      };
    } finally {
      timer.stop();
      uploads.stop();
    }
  }
}

/** What refusing or aborting agents said, for the asker. */
function saying(current: Current): string {
  if (current.said.size === 0) return "";
  const parts = [...current.said].sort(([a], [b]) => a < b ? -1 : 1).map(([name, reason]) =>
    `${name}: ${reason.slice(0, 200)}`
  );
  return ` (${parts.join("; ")})`;
}
