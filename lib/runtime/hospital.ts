/**
 * The hospital's runtime for one v2 round: the thin layer between the
 * sans-I/O core (lib/protocol/hospital/) and the world. It listens with
 * mutual TLS (lib/net/server.ts), takes each peer's name from its
 * certificate through the certificate policy, waits for the peers, then
 * feeds the core every decoded frame, disconnect and deadline, and writes
 * what the core sends. It owns the sockets, the clock and the log; the core
 * owns every protocol decision.
 *
 * @module
 */

import * as x509 from "@peculiar/x509";
import { commonNames } from "../certpolicy.ts";
import { deadlineSignal } from "../deadline.ts";
import { AuthError, describeError, RoundAbortedError } from "../errors.ts";
import { type Identity, verifyPartyCertificate } from "../identity.ts";
import { notePeakRss } from "../memory.ts";
import type { HostPort } from "../names.ts";
import type { Connection } from "../net/connection.ts";
import { listen, type Server } from "../net/server.ts";
import { HospitalRound } from "../protocol/hospital/round.ts";
import type { HospitalOutcome, Outbox, VerifyParty } from "../protocol/types.ts";
import {
  CHUNK_ELEMENTS,
  decodePayload,
  encodeChunk,
  encodeMessage,
  type Terms,
} from "../wire/messages.ts";
import { flushWrites, phaseDeadline, PhaseTimer } from "./phase_timer.ts";
import { stallMs } from "./upload_watchdog.ts";
import { acceptFullFrames, UploadControl } from "./uploads.ts";

/** Options for {@linkcode runStarHospital}. */
export interface StarHospitalOptions {
  identity: Identity;
  listen: HostPort;
  /** How many authenticated peers to wait for before inviting them. */
  peers: number;
  /** The round's terms, with the per-phase deadlines every party will use. */
  terms: Terms & { deadlines: NonNullable<Terms["deadlines"]> };
  /** How long to wait for the peers to connect. */
  joinTimeoutMs: number;
  /** Progress lines (never values). */
  log: (line: string) => void;
  /** Called once the listener is bound, with the actual address. */
  onListening?: (address: HostPort) => void;
  /** Progress of receiving long masked inputs: label, elements done, elements in all. */
  onProgress?: (label: string, done: number, total: number) => void;
  /** Cancels the round from outside. */
  signal?: AbortSignal;
  /** Masked inputs admitted at once (default: lib/protocol/hospital/state.ts `uploadSlots`). */
  uploads?: number;
  /** How long an admitted upload may go without progress (default: lib/runtime/upload_watchdog.ts). */
  uploadStallMs?: number;
}

/** A completed round, as the hospital saw it. */
export interface StarHospitalResult {
  outcome: Extract<HospitalOutcome, { kind: "done" }>;
  session: string;
  /** The START roster, sorted. */
  participants: string[];
  /** Milliseconds from sending START to having the result. */
  startToResultMs: number;
  /** Frame bytes received and sent over all connections. */
  bytesIn: number;
  bytesOut: number;
}

/**
 * The certificate's single CN, which the policy then checks is the name.
 * Read without building an `X509Certificate` (measured 1 ms against 0.1 ms
 * a connection): the policy check that follows reads the certificate itself.
 */
function commonName(pem: string): string {
  const names = commonNames(pem);
  if (names.length !== 1) throw new AuthError("Invalid certificate: it must have exactly one CN");
  return names[0]!;
}

/** Where {@linkcode listenForPeers} listens, and what it records. */
export interface PeerListenerOptions {
  /** Told about each refused connection (the reason, never a value). */
  log: (line: string) => void;
  /** Filled with the certificate (PEM) each party presented, from its latest connection. */
  certificates: Map<string, string>;
  /**
   * How many authenticated parties may wait for their first message at once
   * (lib/net/server.ts, default 1,024): a round's peers all wait for the
   * invitation, so a round of more peers needs at least that many.
   */
  maxWaiting?: number;
}

/**
 * The hospital's mutual-TLS listener for peers, as `sumshare hospital` and
 * the serving hospital both run it: a connection is accepted only if its
 * client certificate has one CN, not the hospital's own, and passes the
 * party policy for a peer under the consortium CA.
 */
export function listenForPeers(
  identity: Identity,
  address: HostPort,
  options: PeerListenerOptions,
): Promise<Server> {
  return listen({
    hostname: address.hostname,
    port: address.port,
    ca: identity.caPem,
    cert: identity.certPem,
    key: identity.keyPem,
    authorize: async (der) => {
      // A copy: node hands over a view into a pooled buffer, which the PEM encoder would read whole.
      const pem = x509.PemConverter.encode(Uint8Array.from(der), "CERTIFICATE") + "\n";
      const name = commonName(pem);
      if (name === identity.name) {
        throw new AuthError(`Refused: ${JSON.stringify(name)} is the hospital's own name`);
      }
      await verifyPartyCertificate(pem, identity.ca, name, { use: "peer" });
      options.certificates.set(name, pem);
      return name;
    },
    onRefused: (error, remote) =>
      options.log(`refused a connection from ${remote}: ${error.message}`),
    ...(options.maxWaiting === undefined ? {} : { maxWaiting: options.maxWaiting }),
  });
}

/**
 * Runs one round as the hospital and returns its result, or throws
 * {@linkcode RoundAbortedError} with the reason.
 */
export async function runStarHospital(options: StarHospitalOptions): Promise<StarHospitalResult> {
  const { identity, log } = options;
  const stop = new AbortController();
  const onOuterAbort = () => stop.abort(options.signal!.reason);
  options.signal?.addEventListener("abort", onOuterAbort, { once: true });
  /** The certificate each party presented, PEM, from its latest connection. */
  const certificates = new Map<string, string>();
  // Every invited peer waits for INVITE at once: above 1,024 peers the default
  // turned the rest away as busy, and a 10,000-peer round sat at 1,024 until its
  // join deadline.
  const server = await listenForPeers(identity, options.listen, {
    log,
    certificates,
    maxWaiting: Math.max(1024, options.peers),
  });
  const connections = new Map<string, Connection>();
  try {
    options.onListening?.({ hostname: server.hostname, port: server.port });
    await gatherPeers(server, connections, options, stop.signal);
    // No joins after the invitations: later connections are refused.
    server.close();
    return await runRound(connections, certificates, options, stop.signal);
  } finally {
    stop.abort(new RoundAbortedError("the hospital stopped"));
    options.signal?.removeEventListener("abort", onOuterAbort);
    server.close();
    for (const conn of connections.values()) conn.close();
  }
}

/** Waits until `options.peers` distinct parties are connected, within the join timeout. */
async function gatherPeers(
  server: Server,
  connections: Map<string, Connection>,
  options: StarHospitalOptions,
  stop: AbortSignal,
): Promise<void> {
  const deadline = deadlineSignal(options.joinTimeoutMs, "waiting for peers to connect", stop);
  while (connections.size < options.peers) {
    let conn: Connection;
    try {
      conn = await server.accept(deadline);
    } catch (error) {
      if (stop.aborted) throw error;
      const { mode, threshold } = options.terms;
      if (mode === "threshold" && connections.size >= threshold) {
        // A threshold round can go on without the peers that never came.
        options.log(
          `join deadline passed: starting with ${connections.size} of ${options.peers} peers`,
        );
        return;
      }
      throw new RoundAbortedError(
        `${describeError(error)} (${connections.size} of ${options.peers} connected)`,
        { cause: error },
      );
    }
    const name = conn.party!;
    const earlier = connections.get(name);
    if (earlier) {
      // The same party again (it restarted): its newest connection counts.
      options.log(`${name} connected again; its earlier connection is closed`);
      earlier.close();
    }
    connections.set(name, conn);
    options.log(`${name} connected (${connections.size} of ${options.peers})`);
  }
}

/** Drives the core over the gathered connections until it has an outcome. */
async function runRound(
  connections: Map<string, Connection>,
  certificates: Map<string, string>,
  options: StarHospitalOptions,
  stop: AbortSignal,
): Promise<StarHospitalResult> {
  const { identity, log, terms } = options;
  const lastWrite = new Map<string, Promise<void>>();
  // Each connection's reads and writes wait on a signal of its own that
  // follows `stop`: with all of them on `stop`, every wait added and removed
  // a listener among a thousand others (Deno's EventTarget scans its list),
  // about 1 s of hospital CPU in a round of 1,000 peers.
  const signals = new Map<string, AbortSignal>();
  for (const name of connections.keys()) signals.set(name, AbortSignal.any([stop]));
  let round: HospitalRound | undefined = undefined;
  /** Parties whose connection is gone: a failed write and the read that follows are one loss. */
  const gone = new Set<string>();
  const lost = (name: string, error: unknown) => {
    if (stop.aborted || round === undefined || round.outcome || gone.has(name)) return;
    gone.add(name);
    uploads.lost(name);
    log(`${name}: ${describeError(error)}`);
    connections.get(name)?.close();
    void round.disconnected(name).then(watch);
  };
  const write = (to: string, payload: Uint8Array) => {
    const conn = connections.get(to);
    if (!conn) return;
    const done = conn.write(payload, signals.get(to)!).catch((error) => lost(to, error));
    lastWrite.set(to, done);
  };
  const uploads = new UploadControl({
    dimension: terms.dimension,
    stallMs: options.uploadStallMs ?? stallMs(terms.deadlines.inputMs),
    connection: (name) => connections.get(name),
    onStall: (name) => void round?.stalled(name).then(watch),
  });
  // §11.2: after ABORT the hospital sends nothing more to that party and
  // closes its connection once the frame has left (2 s at most): a dropped
  // peer that kept sending would otherwise be read, and ignored, until the
  // round ends. Marked gone first, so the read that fails is not a new loss.
  const closeAfterAbort = (to: string) => {
    gone.add(to);
    uploads.lost(to);
    void flushWrites([lastWrite.get(to) ?? Promise.resolve()]).then(() =>
      connections.get(to)?.close()
    );
  };
  const outbox: Outbox = {
    send: (to, message) => {
      uploads.sending(to, message);
      write(to, encodeMessage(message));
      if (message.type === "abort" && !gone.has(to)) closeAfterAbort(to);
    },
    sendChunk: (to, chunk) => write(to, encodeChunk(chunk.index, chunk.data)),
  };
  const verifyParty: VerifyParty = async (certPem, name, role) =>
    (await verifyPartyCertificate(certPem, identity.ca, name, { use: role })).publicKey;
  round = new HospitalRound({
    name: identity.name,
    certPem: identity.certPem,
    signingKey: identity.privateKey,
    terms,
    invitees: [...connections.keys()].map((name) => ({
      name,
      certPem: certificates.get(name)!,
    })),
    outbox,
    verifyParty,
    log,
    ...(options.uploads !== undefined ? { uploads: options.uploads } : {}),
  });
  const current = round;
  const timer = new PhaseTimer(
    (phase) => phaseDeadline(terms.deadlines, phase),
    (phase) => {
      log(`the ${phase} phase's deadline passed`);
      void current.timeout().then(watch);
    },
  );
  let startedAt: number | undefined;
  // The result is known once DONE is out (the attest phase that follows only collects what a
  // receipt can prove), so START→result stops there.
  let resultAt: number | undefined;
  function watch(): void {
    if (startedAt === undefined && current.phase === "confirm") startedAt = performance.now();
    if (resultAt === undefined && (current.phase === "attest" || current.phase === "done")) {
      resultAt = performance.now();
    }
    timer.update(current.phase);
    uploads.phase(current.phase);
  }
  try {
    await current.start();
    watch();
    for (const [name, conn] of connections) {
      const signal = signals.get(name)!;
      void readLoop(name, conn, current, {
        dimension: terms.dimension,
        onProgress: options.onProgress,
        watch,
        lost,
        uploads,
      }, signal);
    }
    const outcome = await current.finished;
    const startToResultMs = (resultAt ?? performance.now()) - (startedAt ?? performance.now());
    timer.stop();
    // Let DONE or ABORT reach every party before the connections close.
    await flushWrites(lastWrite.values());
    if (outcome.kind === "aborted") throw new RoundAbortedError(outcome.reason);
    let bytesIn = 0;
    let bytesOut = 0;
    for (const conn of connections.values()) {
      bytesIn += conn.stats.bytesIn;
      bytesOut += conn.stats.bytesOut;
    }
    return {
      outcome,
      session: current.session,
      participants: current.participants,
      startToResultMs,
      bytesIn,
      bytesOut,
    };
  } finally {
    timer.stop();
    uploads.stop();
  }
}

/** What {@linkcode readLoop} reports to and checks with. */
interface ReadLoopOptions {
  dimension: number;
  onProgress: StarHospitalOptions["onProgress"];
  /** Called after each frame the core handled. */
  watch: () => void;
  lost: (name: string, error: unknown) => void;
  uploads: UploadControl;
}

/** Feeds one connection's frames to the core, in order, until it ends. */
async function readLoop(
  name: string,
  conn: Connection,
  round: HospitalRound,
  options: ReadLoopOptions,
  stop: AbortSignal,
): Promise<void> {
  const handle = frameHandler(name, conn, round, options);
  try {
    let payload: Uint8Array | undefined;
    for (;;) {
      payload = await conn.readFrame(stop);
      await handle(payload);
      // A suspended async function keeps what its frame refers to: the last
      // frame (a 512 KiB chunk) and its decoded copy stayed alive until the
      // party's next message, 1 MiB a peer through the consistency phase (a
      // heap snapshot of the hospital at 100 peers × 2^16 found 100 MiB so
      // held). So the frame is handled in a call of its own and let go here.
      payload = undefined;
      if (round.outcome) return;
    }
  } catch (error) {
    options.lost(name, error);
  }
}

/** Handles one frame from `name` at a time; what is decoded lives only in that call. */
function frameHandler(
  name: string,
  conn: Connection,
  round: HospitalRound,
  options: ReadLoopOptions,
): (payload: Uint8Array) => Promise<void> {
  const { dimension, onProgress, watch, uploads } = options;
  let first = true;
  let received = 0;
  return async (payload) => {
    notePeakRss();
    const decoded = decodePayload(payload);
    if (first) {
      acceptFullFrames(conn);
      first = false;
    }
    if (decoded.kind === "message") {
      uploads.receiving(name, decoded.message);
      await round.message(name, decoded.message);
    } else {
      const index = decoded.chunk.index;
      uploads.chunkArriving(name, index);
      await round.chunk(name, decoded.chunk);
      uploads.chunkHandled(name, index, payload.byteLength);
      if (onProgress && dimension > CHUNK_ELEMENTS) {
        received += decoded.chunk.data.length;
        onProgress(`masked input from ${name}`, Math.min(received, dimension), dimension);
      }
    }
    watch();
  };
}
