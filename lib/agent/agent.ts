/**
 * A peer agent: stays connected to the serving hospital (reconnecting with
 * capped, jittered backoff when it is not up or restarts) and answers every
 * round its policy allows, one fresh PeerSession per round over the same
 * connection. The sans-I/O core decides the protocol; this layer adds what
 * only the agent knows: which variable a round is about (`describe`, before
 * INVITE), the data read afresh for each round, the policy (lib/agent/
 * policy.ts) checked at INVITE before any data is read, at START (n-of-n:
 * the contributor set is the roster) and at SURVIVORS (threshold), the
 * contributor set recorded only when the data leaves for it (n-of-n: the
 * masked input; threshold: the reveal), the persistent state, and the audit
 * log. Every wait is bounded: terms without deadlines get the defaults.
 *
 * @module
 */

import { abortable, abortReason, sleep } from "../deadline.ts";
import { describeError, RoundAbortedError, TimeoutError } from "../errors.ts";
import { type Identity, verifyPartyCertificate } from "../identity.ts";
import { formatHostPort, type HostPort } from "../names.ts";
import { connect } from "../net/client.ts";
import type { Connection } from "../net/connection.ts";
import { PeerSession } from "../protocol/peer/session.ts";
import type { Outbox, PeerOutcome, VerifyParty } from "../protocol/types.ts";
import { fromHex } from "../crypto/bytes.ts";
import { encodeInput, parseQuery } from "../query.ts";
import { flushWrites, peerGrace, phaseDeadline, PhaseTimer } from "../runtime/phase_timer.ts";
import { uniformDeadlines } from "../runtime/terms.ts";
import {
  decodePayload,
  encodeChunk,
  encodeMessage,
  type Message,
  type MessageOf,
  type Terms,
} from "../wire/messages.ts";
import { ReleasedError, verifyReleased } from "../service/released.ts";
import { appendAudit, type AuditEntry } from "./audit.ts";
import { Liveness } from "./liveness.ts";
import type { AgentConfig, Variable } from "./config.ts";
import { atScale, legacyVersions, readVariable, type VariableData } from "./data.ts";
import {
  checkContributors,
  checkTerms,
  PolicyRefusal,
  recordContributors,
  REFUSED_BY_POLICY,
} from "./policy.ts";
import type { AgentState } from "./state.ts";

/** Options for {@linkcode runAgent}. */
export interface AgentOptions {
  config: AgentConfig;
  identity: Identity;
  state: AgentState;
  hospital: HostPort;
  log: (line: string) => void;
  /** Stops the agent. */
  signal: AbortSignal;
  /** First and largest delay between connection attempts; default 250 ms and 5 s. */
  retryMs?: { first: number; max: number };
  /**
   * Each phase's deadline when a round's signed terms announce none
   * (`deadlines` is optional on the wire); default 30 s, as lib/runtime/peer.ts.
   */
  defaultPhaseMs?: number;
  /**
   * The variable a round is about when the hospital names none with
   * `describe`: a one-shot hospital's query has no variable name.
   */
  variable?: Variable;
  /** Called when an INVITE arrives. */
  onInvite?: () => void;
  /** Called with each round's audit entry once it is written. */
  onRoundEnd?: (entry: AuditEntry) => void;
}

/** A delay in [d/2, d] for d = min(max, first·2^attempt), the jitter from Web Crypto. */
export function backoffDelay(attempt: number, first: number, max: number): number {
  const d = Math.min(max, first * 2 ** Math.min(attempt, 30));
  const random = crypto.getRandomValues(new Uint32Array(1))[0]! / 2 ** 32;
  return Math.round(d / 2 + random * d / 2);
}

/** One mutual-TLS connection to the hospital, as the serving and the one-shot agent both open it. */
function connectToHospital(
  options: { hospital: HostPort; identity: Identity },
  signal: AbortSignal,
): Promise<Connection> {
  return connect({
    hostname: options.hospital.hostname,
    port: options.hospital.port,
    ca: options.identity.caPem,
    cert: options.identity.certPem,
    key: options.identity.keyPem,
    peer: `the hospital at ${formatHostPort(options.hospital)}`,
  }, signal);
}

/** Runs until `options.signal` aborts. */
export async function runAgent(options: AgentOptions): Promise<void> {
  const { log, signal } = options;
  const { first, max } = options.retryMs ?? { first: 250, max: 5_000 };
  const address = formatHostPort(options.hospital);
  let attempt = 0;
  while (!signal.aborted) {
    let conn: Connection;
    try {
      conn = await connectToHospital(options, signal);
    } catch (error) {
      if (signal.aborted) break;
      const delay = backoffDelay(attempt++, first, max);
      log(`cannot reach the hospital: ${describeError(error)}; retrying in ${delay} ms`);
      await sleep(delay, signal);
      continue;
    }
    log(`connected to the hospital at ${address}; waiting for rounds`);
    const connection = new AgentConnection(conn, options);
    const since = performance.now();
    try {
      await connection.serve();
    } finally {
      conn.close();
    }
    if (settled(connection, since)) attempt = 0;
    if (signal.aborted) break;
    const delay = backoffDelay(attempt++, first, max);
    log(`lost the hospital; reconnecting in ${delay} ms`);
    await sleep(delay, signal);
  }
}

/** How long an accepted connection must last before the backoff starts again from `first`. */
const SETTLED_MS = 10_000;

/**
 * Whether a connection that just ended resets the backoff: the hospital
 * accepted this party (a valid frame came) and kept it for a while. A TLS
 * handshake alone does not count: a hospital that refuses the party
 * (revoked, wrong name) closes right after it; nor does a connection
 * replaced at once (a second agent of the same name, whose every connect
 * closes this one's). Either way the backoff keeps growing, instead of a
 * retry four times a second for ever.
 */
function settled(connection: AgentConnection, since: number): boolean {
  return connection.accepted && performance.now() - since >= SETTLED_MS;
}

/** Options for {@linkcode runOneRound}. */
export interface OneRoundOptions
  extends Omit<AgentOptions, "signal" | "variable" | "onInvite" | "onRoundEnd"> {
  /** The variable the round is about. */
  variable: Variable;
  /** How long to wait for the hospital and its invitation. */
  joinTimeoutMs: number;
  signal?: AbortSignal;
}

/** How one round ended for this party, as its audit log has it. */
export interface OneRoundResult {
  entry: AuditEntry;
  bytesIn: number;
  bytesOut: number;
}

/**
 * One round, as `sumshare peer --config FILE` without `--serve` runs it: the
 * agent's own path (policy, state, audit log) for the first round it is
 * invited to, about `options.variable`. It retries the hospital within the
 * join window, so the hospital need not be up first.
 */
export async function runOneRound(options: OneRoundOptions): Promise<OneRoundResult> {
  const { log } = options;
  const { first, max } = options.retryMs ?? { first: 250, max: 5_000 };
  const address = formatHostPort(options.hospital);
  const stop = new AbortController();
  const outer = options.signal;
  const onOuter = () => stop.abort(abortReason(outer!));
  outer?.addEventListener("abort", onOuter, { once: true });
  let invited = false;
  const joinTimer = setTimeout(() => {
    if (!invited) {
      stop.abort(
        new TimeoutError(
          `Timed out after ${options.joinTimeoutMs / 1000} s waiting for the hospital's invitation`,
        ),
      );
    }
  }, options.joinTimeoutMs);
  let entry: AuditEntry | undefined;
  let attempt = 0;
  let bytesIn = 0;
  let bytesOut = 0;
  try {
    while (!stop.signal.aborted) {
      let conn: Connection;
      try {
        conn = await connectToHospital(options, stop.signal);
      } catch (error) {
        if (stop.signal.aborted) break;
        const delay = backoffDelay(attempt++, first, max);
        log(`cannot reach the hospital: ${describeError(error)}; retrying in ${delay} ms`);
        await sleep(delay, stop.signal);
        continue;
      }
      log(`connected to the hospital at ${address}; waiting for a round`);
      const connection = new AgentConnection(conn, {
        ...options,
        signal: stop.signal,
        onInvite: () => invited = true,
        onRoundEnd: (end) => {
          entry = end;
          stop.abort(new Error("the round ended"));
        },
      });
      const since = performance.now();
      try {
        await connection.serve();
      } finally {
        bytesIn += conn.stats.bytesIn;
        bytesOut += conn.stats.bytesOut;
        conn.close();
      }
      if (settled(connection, since)) attempt = 0;
      // Lost before an invitation: the hospital may come back within the join window.
      if (invited || stop.signal.aborted) break;
      const delay = backoffDelay(attempt++, first, max);
      log(`lost the hospital; reconnecting in ${delay} ms`);
      await sleep(delay, stop.signal);
    }
  } finally {
    clearTimeout(joinTimer);
    outer?.removeEventListener("abort", onOuter);
  }
  if (entry === undefined) {
    throw stop.signal.aborted
      ? abortReason(stop.signal)
      : new RoundAbortedError("the hospital closed the connection before the round ended");
  }
  return { entry, bytesIn, bytesOut };
}

/** How long to wait for `released` when the terms announced no deadlines. */
const DEFAULT_RELEASED_WAIT_MS = 10_000;

/** A phase's deadline when the signed terms announce none, as in lib/runtime/peer.ts. */
const DEFAULT_PHASE_MS = 30_000;

/** Frames up to this size are batched into one socket write (see lib/runtime/peer.ts). */
const BATCH_BYTES = 16 * 1024;

/** One round as this agent takes part in it. */
interface AgentRound {
  session: string;
  variable: Variable | undefined;
  core: PeerSession;
  timer: PhaseTimer;
  terms?: Terms;
  /**
   * The version of the data read for this round (lib/agent/data.ts). Only
   * the version: the values went to the session, which masks them in place.
   */
  version?: string;
  /** Set when the runtime refused the round itself (START, SURVIVORS). */
  ended?: AuditEntry;
  /** The rule behind a refusal at INVITE. */
  refusal?: string;
  /**
   * The contributor set checked at START (n-of-n) or SURVIVORS (threshold),
   * sorted: recorded when this agent's data leaves for it.
   */
  contributors?: string[];
  /**
   * START (n-of-n) or SURVIVORS (threshold) was checked: the core acts on the
   * first only, and so does the agent (review 4: a second START, ignored by
   * the core, replaced the set the agent recorded).
   */
  decided?: boolean;
  /** The round finished and was logged. */
  closed: Promise<void>;
  /** The hospital's key, from the certificate checked at INVITE. */
  hospitalKey?: CryptoKey;
  /**
   * The hospital's `released` record for this round, once it came (undefined:
   * the hospital went on to another round or the connection ended first).
   */
  released: PromiseWithResolvers<MessageOf<"released"> | undefined>;
}

/** One standing connection to the hospital: many rounds, one at a time. */
class AgentConnection {
  #conn: Connection;
  #options: AgentOptions;
  #stop = new AbortController();
  #lastWrite: Promise<void> = Promise.resolve();
  #pending: Uint8Array[] = [];
  /** The variable the hospital named for each session (only the latest few are kept). */
  #described = new Map<string, Variable>();
  #round: AgentRound | undefined;
  /** Writes held back until the contributor set is on disk (see #send). */
  #held: Uint8Array[] | undefined;
  #accepted = false;

  constructor(conn: Connection, options: AgentOptions) {
    this.#conn = conn;
    this.#options = options;
  }

  /** Whether the hospital sent a valid message on this connection: it accepted this party. */
  get accepted(): boolean {
    return this.#accepted;
  }

  async serve(): Promise<void> {
    const onAbort = () => this.#stop.abort(abortReason(this.#options.signal));
    this.#options.signal.addEventListener("abort", onAbort, { once: true });
    // The serving hospital's heartbeat (docs/protocol.md §16.2): a dead path
    // ends the connection, and the agent reconnects.
    using liveness = new Liveness(this.#stop, {
      busy: () => {
        const round = this.#round;
        return round !== undefined && !round.core.outcome && !round.ended;
      },
      log: this.#options.log,
    });
    let first = true;
    try {
      for (;;) {
        const payload = await this.#conn.readFrame(this.#stop.signal);
        // Not an acceptance: the service sends idle to every connection it takes, a same-name
        // twin's included, and counting it would reset the backoff (review 3, F7).
        if (liveness.heard(payload)) continue;
        const decoded = decodePayload(payload);
        // The read buffer grew to fit this message (START holds about 1.3 KB a participant):
        // an agent lives for many rounds, so the room goes back now.
        if (decoded.kind === "message") this.#conn.compact();
        this.#accepted = true;
        if (first) {
          this.#conn.raiseLimit();
          first = false;
        }
        const round = this.#round;
        if (decoded.kind === "chunk") {
          if (round && !round.core.outcome && !round.ended) await round.core.chunk();
          continue;
        }
        await this.#dispatch(decoded.message);
      }
    } catch (error) {
      if (!this.#stop.signal.aborted) this.#options.log(describeError(error));
      const round = this.#round;
      round?.released.resolve(undefined);
      if (round && !round.core.outcome && !round.ended) await round.core.disconnected();
      // A round this agent refused was logged when it refused; its core is not waited for.
      if (round && !round.ended) {
        await abortable(round.closed, AbortSignal.timeout(5_000)).catch(() => {});
      }
    } finally {
      this.#stop.abort(new Error("the connection ended"));
      this.#options.signal.removeEventListener("abort", onAbort);
      await flushWrites([this.#lastWrite]);
    }
  }

  async #dispatch(message: Message): Promise<void> {
    const { log, config } = this.#options;
    if (message.type === "released") {
      const round = this.#round;
      if (round && round.session === message.session && round.core.outcome?.kind === "done") {
        round.released.resolve(message);
      } else {
        log(`ignored released: not for a round this agent finished`);
      }
      return;
    }
    // The hospital has moved on: the last round's record will not come now.
    if (message.type === "describe" || message.type === "invite") {
      this.#round?.released.resolve(undefined);
    }
    if (message.type === "describe") {
      const variable = config.variables.get(message.variable);
      if (variable === undefined) {
        log(`round ${message.session}: no variable ${JSON.stringify(message.variable)} here`);
        this.#send({ type: "refuse", session: message.session, reason: REFUSED_BY_POLICY });
        return;
      }
      this.#described.set(message.session, variable);
      while (this.#described.size > 8) {
        this.#described.delete(this.#described.keys().next().value!);
      }
      this.#send({
        type: "description",
        session: message.session,
        variable: variable.name,
        scale: variable.scale,
        max: variable.max,
        maxRows: variable.maxRows,
        dimension: variable.dimension,
      });
      return;
    }
    const round = this.#round;
    if (message.type === "invite") {
      this.#options.onInvite?.();
      if (round && !round.core.outcome && !round.ended) {
        log(`round ${round.session} abandoned: the hospital started another`);
        await round.core.disconnected();
      }
      this.#round = this.#newRound(message.session);
      await this.#feed(this.#round, message);
      return;
    }
    if (!round || message.session !== round.session || round.ended || round.core.outcome) {
      log(`ignored ${message.type}: not for a round in progress`);
      return;
    }
    if (message.type === "start" || message.type === "survivors") {
      const { terms, version, variable } = round;
      const decides = terms !== undefined &&
        (message.type === "start") === (terms.mode === "nofn");
      if (decides && round.decided) {
        // The core ignores it as late; its set must not replace the one checked.
        log(`ignored a second ${message.type} in round ${round.session}`);
        return;
      }
      if (decides && version !== undefined && variable) {
        round.decided = true;
        const set = message.type === "start"
          ? message.participants.map((p) => p.name)
          : message.set;
        try {
          // Checked now, recorded only when the data leaves for this set (#send).
          checkContributors(variable, version, set, this.#options.state);
        } catch (error) {
          if (!(error instanceof PolicyRefusal)) throw error;
          this.#refuseNow(round, error.rule);
          return;
        }
        round.contributors = [...set].sort();
      } else if (message.type === "start" && variable) {
        // Threshold: the set is known at SURVIVORS; the roster must still meet the floor.
        if (message.participants.length < variable.policy.minContributors) {
          this.#refuseNow(round, `a roster of ${message.participants.length}, below the floor`);
          return;
        }
      }
    }
    await this.#feed(round, message);
  }

  /** Ends `round` here: the hospital hears only "refused by policy". */
  #refuseNow(round: AgentRound, rule: string): void {
    this.#send({ type: "abort", session: round.session, reason: REFUSED_BY_POLICY });
    round.timer.stop();
    this.#options.log(`round ${round.session} refused by policy: ${rule}`);
    round.ended = {
      session: round.session,
      variable: round.variable?.name,
      query: round.terms?.query,
      outcome: "refused",
      reason: rule,
    };
    void this.#close(round, round.ended);
  }

  async #feed(round: AgentRound, message: Message): Promise<void> {
    await round.core.message(message);
    round.timer.update(round.core.phase);
  }

  #newRound(session: string): AgentRound {
    const { config, identity, state, log } = this.#options;
    const variable = this.#described.get(session) ?? this.#options.variable;
    const fallback = uniformDeadlines(this.#options.defaultPhaseMs ?? DEFAULT_PHASE_MS);
    const outbox: Outbox = {
      send: (_to, message) => this.#send(message),
      sendChunk: (_to, chunk) => this.#write(encodeChunk(chunk.index, chunk.data)),
    };
    // deno-lint-ignore prefer-const
    let round: AgentRound;
    const verifyParty: VerifyParty = async (certPem, name, role) => {
      const key = (await verifyPartyCertificate(certPem, identity.ca, name, { use: role }))
        .publicKey;
      // The key the `released` record must verify under: the one INVITE was checked with.
      if (role === "hospital") round.hospitalKey = key;
      return key;
    };
    const core = new PeerSession({
      name: identity.name,
      hospitalName: config.hospitalName,
      signingKey: identity.privateKey,
      outbox,
      verifyParty,
      claimSession: (id) => state.claimSession(id),
      input: async (terms, layout) => {
        round.terms = terms;
        if (variable === undefined) {
          round.refusal = "the hospital named no variable for this round";
          throw new PolicyRefusal(round.refusal);
        }
        // Before the data is read: the decision cannot depend on it.
        try {
          checkTerms(variable, terms, state, Date.now());
        } catch (error) {
          if (error instanceof PolicyRefusal) round.refusal = error.rule;
          throw error;
        }
        // Every round that reads the data counts towards max_rounds_per_day,
        // joined or refused for the site's own data error.
        await state.recordJoined(Date.now());
        let data: VariableData;
        let x: Float64Array;
        try {
          data = await readVariable(variable);
          if (state.hasLegacy(variable.name)) {
            await state.adoptLegacy(
              variable.name,
              data.version,
              await legacyVersions(data.values, variable.scale),
            );
          }
          const query = parseQuery(terms.query, terms.scale);
          // Exact: checkTerms made the round's R cover the declared max at its scale.
          const values = atScale(data.values, variable.scale, terms.scale);
          x = encodeInput(query, { values, where: data.where }, { scale: terms.scale, layout });
        } catch (error) {
          // This site's own data or configuration error, the same for every
          // round until fixed. Where, never what: the file, line and column.
          round.refusal = `cannot use ${variable.name}: ${describeError(error)}`;
          log(round.refusal);
          throw new PolicyRefusal(round.refusal);
        }
        round.version = data.version;
        if (data.skipped > 0) log(`${variable.name}: ${data.skipped} missing cells skipped`);
        return x;
      },
      minContributors: variable?.policy.minContributors ?? 2,
      log: (line) => log(`round ${session}: ${line}`),
    });
    const timer = new PhaseTimer(
      (phase) => {
        // Terms without deadlines still get one per phase: never an unbounded wait.
        const ms = phaseDeadline(round.core.terms?.deadlines ?? fallback, phase);
        return ms === undefined ? undefined : peerGrace(ms);
      },
      (phase) => {
        log(`round ${session}: no word from the hospital in the ${phase} phase`);
        void round.core.timeout().then(() => timer.update(round.core.phase));
      },
    );
    round = {
      session,
      variable,
      core,
      timer,
      closed: Promise.resolve(),
      released: Promise.withResolvers(),
    };
    round.closed = core.finished.then(async (outcome) => {
      timer.stop();
      if (round.ended) return;
      const entry: AuditEntry = outcome.kind === "done"
        ? {
          session,
          variable: variable?.name,
          query: round.terms?.query,
          outcome: "done",
          contributors: outcome.set,
          resultDigest: outcome.resultDigest,
        }
        : {
          session,
          variable: variable?.name,
          query: round.terms?.query,
          outcome: round.refusal === undefined ? "aborted" : "refused",
          reason: round.refusal ?? outcome.reason,
        };
      if (outcome.kind === "done") {
        log(`round ${session} done: ${variable?.name} over ${outcome.set.join(", ")}`);
        Object.assign(entry, await this.#released(round, outcome));
      } else {
        log(`round ${session} ${entry.outcome}: ${entry.reason}`);
      }
      await this.#close(round, entry);
    });
    return round;
  }

  /**
   * Waits for the hospital's signed record of what the round released and
   * checks it (lib/service/released.ts): `released` for the audit entry, or
   * `releasedInvalid` saying why one did not verify. Nothing when none came.
   */
  async #released(
    round: AgentRound,
    outcome: Extract<PeerOutcome, { kind: "done" }>,
  ): Promise<Pick<AuditEntry, "released" | "releasedInvalid">> {
    const deadlines = round.core.terms?.deadlines;
    const attestMs = deadlines === undefined ? undefined : phaseDeadline(deadlines, "attest");
    // The hospital sends it once the attest phase is over, at most that phase's deadline.
    const timer = setTimeout(
      () => round.released.resolve(undefined),
      peerGrace(attestMs ?? DEFAULT_RELEASED_WAIT_MS),
    );
    const message = await round.released.promise;
    clearTimeout(timer);
    if (message === undefined) return {};
    const { variable, terms, hospitalKey } = round;
    try {
      if (!variable || !terms || !hospitalKey) {
        throw new ReleasedError("Invalid released result: this agent has no record of the round");
      }
      const released = await verifyReleased(message, {
        session: round.session,
        startHash: fromHex(outcome.startHash),
        variable: variable.name,
        query: terms.query,
        set: outcome.set,
        resultDigest: outcome.resultDigest,
        hospitalKey,
      });
      this.#options.log(`round ${round.session}: the hospital's released result verifies`);
      return { released };
    } catch (error) {
      if (!(error instanceof ReleasedError)) throw error;
      this.#options.log(`round ${round.session}: ${error.message}; not recorded as released`);
      return { releasedInvalid: error.message };
    }
  }

  async #close(round: AgentRound, entry: AuditEntry): Promise<void> {
    try {
      await appendAudit(this.#options.config.auditPath, entry);
    } catch (error) {
      this.#options.log(describeError(error));
    }
    if (this.#round === round) this.#round = undefined;
    this.#options.onRoundEnd?.(entry);
  }

  #send(message: Message): void {
    this.#options.log(`sending ${message.type}`);
    const round = this.#round;
    const leaves = round?.terms?.mode === "nofn" ? "input" : "reveal";
    if (
      round !== undefined && round.contributors !== undefined && message.type === leaves &&
      "session" in message && message.session === round.session
    ) {
      // The data leaves for this set now: the set goes on disk first, and
      // this message and everything after it wait for that. The set is the
      // one the core checked and sends to; it must be the one checked here.
      const checked = round.contributors;
      delete round.contributors;
      const set = round.core.contributors;
      if (set === undefined || set.join("\n") !== checked.join("\n")) {
        this.#refuseNow(round, "the contributor set is not the one checked");
        return;
      }
      this.#held ??= [];
      this.#held.push(encodeMessage(message));
      void this.#pin(round, set);
      return;
    }
    this.#write(encodeMessage(message));
  }

  /** Records `set` for the round's data version, then lets the held writes go; refuses if it cannot. */
  async #pin(round: AgentRound, set: string[]): Promise<void> {
    const { variable, version } = round;
    let refusal: string | undefined;
    try {
      await recordContributors(variable!, version!, set, this.#options.state);
    } catch (error) {
      refusal = error instanceof PolicyRefusal
        ? error.rule
        : `cannot record the contributor set: ${describeError(error)}`;
    }
    const held = this.#held ?? [];
    this.#held = undefined;
    if (refusal !== undefined) {
      // Nothing held leaves: the data stays here.
      if (!round.ended) this.#refuseNow(round, refusal);
      return;
    }
    for (const payload of held) this.#write(payload);
  }

  #write(payload: Uint8Array): void {
    if (this.#held !== undefined) {
      this.#held.push(payload);
      return;
    }
    this.#pending.push(payload);
    if (this.#pending.length === 1) queueMicrotask(() => this.#flush());
  }

  #flush(): void {
    const batch = this.#pending;
    this.#pending = [];
    const conn = this.#conn;
    const signal = this.#stop.signal;
    const lost = (error: unknown) => {
      if (!signal.aborted) this.#options.log(describeError(error));
      conn.close();
    };
    let small: Uint8Array[] = [];
    const sendSmall = () => {
      if (small.length === 1) this.#lastWrite = conn.write(small[0]!, signal).catch(lost);
      if (small.length > 1) this.#lastWrite = conn.writeBatch(small, signal).catch(lost);
      small = [];
    };
    for (const payload of batch) {
      if (payload.length > BATCH_BYTES) {
        sendSmall();
        this.#lastWrite = conn.write(payload, signal).catch(lost);
      } else {
        small.push(payload);
      }
    }
    sendSmall();
  }
}
