/**
 * A simulation worker: one process running many peers at once, each with its
 * own identity, its own mutual-TLS connection and its own data, through the
 * same `runStarPeer` (lib/runtime/peer.ts) and transport as `sumshare peer`.
 *
 * The driver (main.ts) writes a {@linkcode WorkerConfig} as JSON on stdin;
 * the worker answers with one {@linkcode WorkerReport} line on stdout. A
 * peer planned to drop out connects through a {@linkcode CuttableLink},
 * which is cut when the peer is about to send its answer in that phase (the
 * peer's own progress lines say when: `sending TYPE`).
 *
 * @module
 */

import process from "node:process";
import { join } from "node:path";
import { describeError, isExpectedError } from "../errors.ts";
import { samplePeakRss, trackPeakRss } from "../memory.ts";
import { type Identity, loadIdentity } from "../identity.ts";
import type { HostPort } from "../names.ts";
import { encodeInput, InputError, parseQuery, type Query, vectorLayout } from "../query.ts";
import { runStarPeer } from "../runtime/peer.ts";
import type { Terms } from "../wire/messages.ts";
import { peerData } from "./data.ts";
import { CuttableLink } from "./link.ts";
import { type PeerEnd, type Phase, PHASE_MESSAGES } from "./plan.ts";

/** One peer a worker runs. */
export interface WorkerPeer {
  index: number;
  name: string;
  /** The phase at which it vanishes; absent for a peer that stays. */
  dropAt?: Phase;
}

/** What the driver tells a worker. */
export interface WorkerConfig {
  /** The throwaway PKI: ca.crt, NAME.crt, NAME.key. */
  dir: string;
  hospital: HostPort;
  hospitalName: string;
  seed: number;
  /** The query, in canonical form: the data are generated for it. */
  query: string;
  peers: WorkerPeer[];
  inviteTimeoutMs: number;
  /** Connections this worker opens at a time (TLS handshakes in flight). */
  concurrency: number;
}

/** How one peer's round ended. */
export interface PeerReport extends PeerEnd {
  /** done: the round finished; dropped: cut as planned; failed: anything else. */
  status: "done" | "dropped" | "failed";
  /** Why it failed: the error, or its last progress line (never a value). */
  reason?: string;
  bytesIn: number;
  bytesOut: number;
}

/** When an event (connected, sending TYPE, done) first and last happened, epoch ms. */
export interface EventSpan {
  count: number;
  first: number;
  last: number;
}

/** What a worker reports. */
export interface WorkerReport {
  peers: PeerReport[];
  events: Record<string, EventSpan>;
  /** Loading the identities: wall and CPU milliseconds. */
  loadMs: number;
  loadCpuMs: number;
  /** When the identities were loaded, epoch ms. */
  loadedAt: number;
  /** CPU milliseconds from the first connection to the last peer's end (user + system). */
  roundCpuMs: number;
  /**
   * The process's peak resident memory, bytes, sampled (lib/memory.ts): the
   * kernel's own maximum (getrusage) would include the parent's memory at
   * the fork, which Linux carries over the exec.
   */
  peakRssBytes: number;
}

/** Milliseconds since the epoch, to sub-millisecond precision: comparable across processes. */
function now(): number {
  return performance.timeOrigin + performance.now();
}

function cpuMs(since?: NodeJS.CpuUsage): number {
  const { user, system } = process.cpuUsage(since);
  return (user + system) / 1000;
}

/** At most `limit` holders at a time. */
class Gate {
  #free: number;
  #waiting: (() => void)[] = [];

  constructor(limit: number) {
    this.#free = limit;
  }

  async enter(): Promise<() => void> {
    if (this.#free > 0) this.#free--;
    else await new Promise<void>((resolve) => this.#waiting.push(resolve));
    let left = false;
    return () => {
      if (left) return;
      left = true;
      const next = this.#waiting.shift();
      if (next) next();
      else this.#free++;
    };
  }
}

/** The peer's vector for the announced terms, as `sumshare peer` encodes it. */
function encodeFor(terms: Terms, data: ReturnType<typeof peerData>): Float64Array {
  if (terms.scale !== 0) {
    throw new InputError(
      `the round reads decimals at scale ${terms.scale}; simulated data are at 0`,
    );
  }
  const query = parseQuery(terms.query, terms.scale);
  const layout = vectorLayout(query, {
    max: terms.max,
    maxRows: terms.maxRows,
    participants: terms.participants,
  });
  return encodeInput(query, data, { scale: 0, layout });
}

/** Runs every peer of `config` and reports how each ended. */
export async function runWorker(config: WorkerConfig): Promise<WorkerReport> {
  trackPeakRss();
  const query: Query = parseQuery(config.query, 0);
  const events: Record<string, EventSpan> = {};
  const note = (event: string) => {
    const t = now();
    const span = events[event];
    if (span) {
      span.count++;
      span.last = t;
    } else {
      events[event] = { count: 1, first: t, last: t };
    }
  };

  const loadStarted = performance.now();
  const loadCpu = process.cpuUsage();
  // Each peer loads and checks its own credentials and keeps its own CA
  // object, so it verifies every certificate itself as a peer process would
  // (identity.ts caches checks per CA object).
  const identities: Identity[] = [];
  for (const peer of config.peers) {
    identities.push(
      await loadIdentity(peer.name, {
        ca: join(config.dir, "ca.crt"),
        cert: join(config.dir, `${peer.name}.crt`),
        key: join(config.dir, `${peer.name}.key`),
      }, { use: "peer" }),
    );
  }
  const loadMs = performance.now() - loadStarted;
  const loadCpuMs = cpuMs(loadCpu);
  const loadedAt = now();

  const roundCpu = process.cpuUsage();
  const gate = new Gate(config.concurrency);
  const reports = await Promise.all(config.peers.map(async (peer, i): Promise<PeerReport> => {
    const leave = await gate.enter();
    const link = peer.dropAt === undefined ? undefined : new CuttableLink(config.hospital);
    const cutBefore = peer.dropAt === undefined ? undefined : PHASE_MESSAGES[peer.dropAt];
    let lastLine = "";
    let vanished = false;
    const data = peerData(config.seed, peer.index, query);
    const base = { index: peer.index, name: peer.name };
    try {
      const round = await runStarPeer({
        identity: identities[i]!,
        hospital: link?.address ?? config.hospital,
        hospitalName: config.hospitalName,
        input: (terms) => encodeFor(terms, data),
        inviteTimeoutMs: config.inviteTimeoutMs,
        log: (line) => {
          lastLine = line;
          if (line.startsWith("connected to the hospital")) {
            note("connected");
            leave();
            return;
          }
          const type = /^sending (\w+)$/.exec(line)?.[1];
          if (type === undefined) return;
          if (type === cutBefore && !vanished) {
            // Synchronously, before the batched write goes out: the answer never leaves.
            vanished = true;
            link!.cut();
            return;
          }
          note(type);
        },
      });
      note("done");
      return { ...base, status: "done", bytesIn: round.bytesIn, bytesOut: round.bytesOut };
    } catch (error) {
      if (vanished) {
        return { ...base, status: "dropped", droppedAt: peer.dropAt!, bytesIn: 0, bytesOut: 0 };
      }
      const reason = isExpectedError(error) ? describeError(error) : String(error);
      return {
        ...base,
        status: "failed",
        reason: lastLine ? `${reason} (last: ${lastLine})` : reason,
        bytesIn: 0,
        bytesOut: 0,
      };
    } finally {
      leave();
      await link?.close();
    }
  }));
  return {
    peers: reports,
    events,
    loadMs,
    loadCpuMs,
    loadedAt,
    roundCpuMs: cpuMs(roundCpu),
    peakRssBytes: samplePeakRss(),
  };
}

if (import.meta.main) {
  try {
    const config = JSON.parse(await new Response(Deno.stdin.readable).text()) as WorkerConfig;
    console.log(JSON.stringify(await runWorker(config)));
  } catch (error) {
    console.error(`simulate worker: ${error instanceof Error ? error.stack : String(error)}`);
    Deno.exit(1);
  }
}
