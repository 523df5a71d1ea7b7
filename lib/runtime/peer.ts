/**
 * A peer's runtime for one v2 round: one mutual-TLS connection to the
 * hospital (lib/net/client.ts), the sans-I/O core (lib/protocol/peer/) fed
 * with every decoded frame, disconnect and deadline, and what the core sends
 * written back. The peer never listens.
 *
 * @module
 */

import { describeError, RoundAbortedError } from "../errors.ts";
import { type Identity, verifyPartyCertificate } from "../identity.ts";
import { notePeakRss } from "../memory.ts";
import { formatHostPort, type HostPort } from "../names.ts";
import { connect } from "../net/client.ts";
import { PeerSession } from "../protocol/peer/session.ts";
import type { Outbox, PeerOutcome, VerifyParty } from "../protocol/types.ts";
import {
  CHUNK_ELEMENTS,
  decodePayload,
  encodeChunk,
  encodeMessage,
  type Terms,
} from "../wire/messages.ts";
import {
  cpuMs,
  flushWrites,
  formatTimeline,
  peerGrace,
  phaseDeadline,
  PhaseTimer,
} from "./phase_timer.ts";

/** Each phase's deadline when the hospital announced none (docs/protocol.md, Timers). */
const DEFAULT_DEADLINES = {
  joinMs: 30_000,
  confirmMs: 30_000,
  shareMs: 30_000,
  inputMs: 30_000,
  consistencyMs: 30_000,
  unmaskMs: 30_000,
};

/** Frames up to this size are batched into one socket write. */
const BATCH_BYTES = 16 * 1024;

/** Options for {@linkcode runStarPeer}. */
export interface StarPeerOptions {
  identity: Identity;
  hospital: HostPort;
  /** The hospital certificate's CN: INVITE must carry a certificate for it. */
  hospitalName: string;
  /**
   * This peer's input for the round's terms, as field elements; throws to
   * refuse the round (the message names where, never what). The array
   * becomes the session's and is masked in place: return a copy of data
   * that is read again later.
   */
  input(terms: Terms): Float64Array | Promise<Float64Array>;
  /** The fewest inputs this peer lets a sum cover, whatever the hospital asks. */
  minContributors?: number;
  /** How long to wait for the hospital's invitation once connected. */
  inviteTimeoutMs: number;
  /** Session ids this process has taken part in: a repeat is refused. */
  seenSessions?: Set<string>;
  /** Progress lines (never values). */
  log: (line: string) => void;
  /** Progress of sending a long masked input: label, elements done, elements in all. */
  onProgress?: (label: string, done: number, total: number) => void;
  signal?: AbortSignal;
}

/** A completed round, as the peer saw it. */
export interface StarPeerResult {
  outcome: Extract<PeerOutcome, { kind: "done" }>;
  session: string;
  bytesIn: number;
  bytesOut: number;
}

/** Runs one round as a peer, or throws {@linkcode RoundAbortedError} with the reason. */
export async function runStarPeer(options: StarPeerOptions): Promise<StarPeerResult> {
  const { identity, log } = options;
  const stop = new AbortController();
  const onOuterAbort = () => stop.abort(options.signal!.reason);
  options.signal?.addEventListener("abort", onOuterAbort, { once: true });
  const seen = options.seenSessions ?? new Set<string>();
  const address = formatHostPort(options.hospital);
  let conn;
  try {
    conn = await connect({
      hostname: options.hospital.hostname,
      port: options.hospital.port,
      ca: identity.caPem,
      cert: identity.certPem,
      key: identity.keyPem,
      peer: `the hospital at ${address}`,
    }, stop.signal);
  } catch (error) {
    options.signal?.removeEventListener("abort", onOuterAbort);
    throw error;
  }
  const connection = conn;
  let lastWrite: Promise<void> = Promise.resolve();
  let session: PeerSession | undefined = undefined;
  let gone = false;
  const lost = (error: unknown) => {
    // A failed write and the read that follows are one loss.
    if (stop.signal.aborted || session === undefined || session.outcome || gone) return;
    gone = true;
    log(describeError(error));
    connection.close();
    void session.disconnected().then(watch);
  };
  // Frames the core sends in one go leave together: small ones in one socket
  // write (see Connection.writeBatch), large ones alone. A large vector chunk
  // is encoded only when its turn to be written comes (Connection.writeLazily):
  // the core hands over every chunk of the masked vector at once, and encoded
  // up front they would all wait in the queue, a second copy of the vector.
  let pending: (Uint8Array | (() => Uint8Array))[] = [];
  const flush = () => {
    const batch = pending;
    pending = [];
    let small: Uint8Array[] = [];
    const sendSmall = () => {
      if (small.length === 1) lastWrite = connection.write(small[0]!, stop.signal).catch(lost);
      if (small.length > 1) lastWrite = connection.writeBatch(small, stop.signal).catch(lost);
      small = [];
    };
    for (const payload of batch) {
      if (typeof payload === "function") {
        sendSmall();
        lastWrite = connection.writeLazily(payload, stop.signal).catch(lost);
      } else if (payload.length > BATCH_BYTES) {
        sendSmall();
        lastWrite = connection.write(payload, stop.signal).catch(lost);
      } else {
        small.push(payload);
      }
    }
    sendSmall();
  };
  const write = (payload: Uint8Array | (() => Uint8Array)) => {
    pending.push(payload);
    if (pending.length === 1) queueMicrotask(flush);
  };
  let sent = 0;
  const outbox: Outbox = {
    send: (_to, message) => {
      // A progress line per message (its type only): where a round stands, for operators and tests.
      log(`sending ${message.type}`);
      write(encodeMessage(message));
    },
    sendChunk: (_to, chunk) => {
      // A chunk's payload is 5 bytes more than its elements: over BATCH_BYTES
      // exactly when the elements alone are at least that.
      const { index, data } = chunk;
      if (data.length * 8 >= BATCH_BYTES) write(() => encodeChunk(index, data));
      else write(encodeChunk(index, data));
      notePeakRss();
      const total = session?.terms?.dimension ?? 0;
      const report = options.onProgress;
      if (report && total > CHUNK_ELEMENTS) {
        const count = chunk.data.length;
        lastWrite.then(() => report("masked input", sent += count, total));
      }
    },
  };
  const verifyParty: VerifyParty = async (certPem, name, role) =>
    (await verifyPartyCertificate(certPem, identity.ca, name, { use: role })).publicKey;
  session = new PeerSession({
    name: identity.name,
    hospitalName: options.hospitalName,
    signingKey: identity.privateKey,
    outbox,
    verifyParty,
    claimSession: (id) => {
      if (seen.has(id)) return false;
      seen.add(id);
      return true;
    },
    input: (terms) => options.input(terms),
    ...(options.minContributors === undefined ? {} : { minContributors: options.minContributors }),
    log,
  });
  const current = session;
  const timer = new PhaseTimer(
    (phase) => {
      if (phase === "invite") return options.inviteTimeoutMs;
      // Terms without deadlines still get one per phase: a peer never waits unbounded.
      const deadlines = current.terms?.deadlines ?? DEFAULT_DEADLINES;
      const ms = phaseDeadline(deadlines, phase);
      return ms === undefined ? undefined : peerGrace(ms);
    },
    (phase) => {
      log(`no word from the hospital in the ${phase} phase`);
      void current.timeout().then(watch);
    },
  );
  let idle: ReturnType<typeof setTimeout> | undefined;
  function watch(): void {
    timer.update(current.phase);
    // Once what this event sent has left, the core may work ahead (its
    // writes first: work started before them would hold them back).
    clearTimeout(idle);
    idle = setTimeout(() => {
      void lastWrite.then(() => {
        if (!stop.signal.aborted) current.prepare();
      });
    }, 0);
  }
  try {
    log(`connected to the hospital at ${address}; waiting for a round`);
    watch();
    void readLoop(connection, current, watch, lost, stop.signal);
    const outcome = await current.finished;
    timer.stop();
    clearTimeout(idle);
    const end = { phase: "end", at: performance.now(), cpu: cpuMs() };
    log(`phases: ${formatTimeline(timer.timeline, end)}`);
    await flushWrites([lastWrite]);
    if (outcome.kind === "aborted") throw new RoundAbortedError(outcome.reason);
    const { bytesIn, bytesOut } = connection.stats;
    return { outcome, session: current.session, bytesIn, bytesOut };
  } finally {
    timer.stop();
    clearTimeout(idle);
    stop.abort(new RoundAbortedError("the peer stopped"));
    options.signal?.removeEventListener("abort", onOuterAbort);
    connection.close();
  }
}

/** Feeds the hospital's frames to the core, in order, until the connection ends. */
async function readLoop(
  conn: Awaited<ReturnType<typeof connect>>,
  session: PeerSession,
  watch: () => void,
  lost: (error: unknown) => void,
  stop: AbortSignal,
): Promise<void> {
  let first = true;
  try {
    for (;;) {
      const payload = await conn.readFrame(stop);
      notePeakRss();
      const decoded = decodePayload(payload);
      if (first) {
        // The hospital's first message decoded: from now on it may send full frames.
        conn.raiseLimit();
        first = false;
      }
      if (decoded.kind === "message") {
        // The read buffer grew to fit this message (START holds about 1.3 KB
        // a participant): let that go now, not at the end of the round, and
        // before the core works on the message.
        conn.compact();
        await session.message(decoded.message);
      } else {
        await session.chunk();
      }
      watch();
      if (session.outcome) return;
    }
  } catch (error) {
    lost(error);
  }
}
