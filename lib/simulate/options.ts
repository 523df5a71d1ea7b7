/**
 * `sumshare simulate`'s flags, checked before anything starts: every problem
 * is a {@linkcode UsageError} (exit code 2).
 *
 * @module
 */

import { UsageError } from "../errors.ts";
import { integerFlag, parseFlags, stringFlag } from "../options.ts";
import { formatQuery, parseQuery, type Query } from "../query.ts";
import { assertThresholdFloors, peerCap, sparseGraphOption } from "../runtime/terms.ts";
import { MAX_PARTICIPANTS, MAX_SPARSE_PARTICIPANTS } from "../wire/messages.ts";
import { checkSimulatable } from "./data.ts";
import { dropoutCount, isPhase, type Phase, phasesOf } from "./plan.ts";

/** What a simulation runs. */
export interface SimulateOptions {
  peers: number;
  query: Query;
  /** The query in canonical form, as the hospital gets it. */
  queryText: string;
  /** T for a threshold round; undefined for n-of-n. */
  threshold: number | undefined;
  /** How many peers drop out, and at which phase (undefined: a phase from the seed for each). */
  dropouts: number;
  dropoutAt: Phase | undefined;
  workers: number;
  seed: number;
  json: boolean;
  /** Where the hospital and the workers write V8 CPU profiles; undefined: no profiling. */
  cpuProf: string | undefined;
  /** K for a sparse pairing graph (docs/protocol.md §18); undefined for the complete graph. */
  neighbors: number | undefined;
  /** The hospital's --uploads; undefined: its default. */
  uploads: number | undefined;
}

export const SIMULATE_HELP =
  `Usage: sumshare simulate --peers N [--query Q] [--threshold T] [--neighbors K|auto]
                         [--dropout F] [--dropout-at PHASE] [--workers W] [--seed S]
                         [--uploads U] [--cpu-prof DIR] [--json]

Runs a whole round on this machine at scale: a throwaway PKI (one certificate
per peer), the hospital as its own process, and N peers inside W worker
processes, each peer with its own mutual-TLS connection, its own random data and
the same protocol and transport code as 'sumshare peer'. Prints a timeline (time
per phase, bytes, CPU and peak memory), the result, the plaintext result over
the survivors, and whether they match.

Options:
  --peers N          the number of peers (2 to ${MAX_PARTICIPANTS}; sparse: to ${MAX_SPARSE_PARTICIPANTS})
  --query Q          sum (default), count, mean, variance, histogram:LOW:HIGH:BINS or vector:D
  --threshold T      threshold mode (T > N/2); default n-of-n
  --dropout F        this fraction of the peers (rounded to the nearest whole number) vanish
                     mid-round; needs --threshold, and at least T peers must stay
  --dropout-at PHASE the phase at which they vanish: advertise, confirm, share, input,
                     consistency or unmask (default: a phase chosen from the seed for each)
  --workers W        worker processes (default: one per core)
  --seed S           seed of the data and of who drops out, 0 to 4294967295 (default: random,
                     printed so a run can be replayed); keys and masks always use Web Crypto
  --neighbors K|auto sparse pairing: each peer pairs with K neighbours (even) in a Harary graph,
                     threshold T per neighbourhood (2T > K + 1; a given K defaults to K/2 + 2);
                     auto picks K and T for N, 5 % colluders and 5 % dropouts (failure below
                     2^-40); default: complete graph. Peers then trust the hospital with the
                     neighbourhoods, and a peer's floor is checked against the roster's size,
                     not the set summed
  --uploads U        masked inputs the hospital admits at once (its --uploads; default: as
                     many vectors as fit in 64 MiB, at least 2)
  --cpu-prof DIR     write V8 CPU profiles of the hospital and of every worker into DIR
  --json             print one JSON object on stdout
  -h, --help         this text

Exit codes: 0 the result matches the plaintext over exactly the expected survivors;
1 it does not, or the round failed; 2 usage error.`;

const FLAGS = {
  help: { type: "boolean", short: "h" },
  peers: { type: "string" },
  query: { type: "string" },
  threshold: { type: "string" },
  dropout: { type: "string" },
  "dropout-at": { type: "string" },
  workers: { type: "string" },
  seed: { type: "string" },
  neighbors: { type: "string" },
  uploads: { type: "string" },
  json: { type: "boolean" },
  "cpu-prof": { type: "string" },
} as const;

/** A fraction in [0, 1), written as a plain decimal. */
function fractionFlag(text: string | undefined): number {
  if (text === undefined) return 0;
  const value = /^(0|0?\.[0-9]+)$/.test(text) ? Number(text) : NaN;
  if (!(value >= 0 && value < 1)) {
    throw new UsageError("Invalid --dropout: expected a fraction from 0 to below 1, e.g. 0.1");
  }
  return value;
}

function randomSeed(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0]!;
}

/** Parses and checks the flags; `help` is true when --help was asked. */
export function parseSimulateOptions(args: string[]): SimulateOptions | "help" {
  const flags = parseFlags(args, FLAGS);
  if (flags.values["help"]) return "help";
  const neighborsSpec = flags.values["neighbors"] as string | undefined;
  const peers = integerFlag(flags, "peers", { min: 2, max: peerCap(neighborsSpec !== undefined) });
  let query: Query;
  try {
    query = parseQuery(stringFlag(flags, "query", "sum"), 0);
    checkSimulatable(query);
  } catch (cause) {
    throw new UsageError((cause as Error).message, { cause });
  }
  const given = flags.values["threshold"] === undefined
    ? undefined
    : integerFlag(flags, "threshold", { min: 1, max: MAX_PARTICIPANTS });
  let threshold = given;
  let neighbors: number | undefined;
  try {
    const sparse = sparseGraphOption(neighborsSpec, { peers, threshold: given });
    if (sparse) {
      ({ neighbors, threshold } = sparse);
    } else if (threshold !== undefined) {
      assertThresholdFloors(peers, threshold, 2);
    }
  } catch (cause) {
    throw new UsageError((cause as Error).message, { cause });
  }
  const fraction = fractionFlag(flags.values["dropout"] as string | undefined);
  const dropouts = dropoutCount(peers, fraction);
  const at = flags.values["dropout-at"] as string | undefined;
  if (at !== undefined && flags.values["dropout"] === undefined) {
    throw new UsageError("--dropout-at goes with --dropout");
  }
  if (at !== undefined && !isPhase(at)) {
    throw new UsageError(
      "Invalid --dropout-at: expected advertise, confirm, share, input, consistency or unmask",
    );
  }
  if (dropouts > 0 && threshold === undefined) {
    throw new UsageError(
      "--dropout needs --threshold: an n-of-n round aborts when any peer drops out",
    );
  }
  if (at !== undefined && !phasesOf(threshold !== undefined).includes(at)) {
    throw new UsageError(`Invalid --dropout-at: an n-of-n round has no ${at} phase`);
  }
  if (threshold !== undefined && peers - dropouts < threshold) {
    throw new UsageError(
      `Cannot simulate: ${dropouts} dropouts would leave ${peers - dropouts} peers, ` +
        `fewer than the threshold ${threshold}, and the round could not finish`,
    );
  }
  const cores = navigator.hardwareConcurrency || 1;
  const workers = integerFlag(flags, "workers", {
    min: 1,
    max: peers,
    fallback: Math.min(cores, peers),
  });
  const seed = integerFlag(flags, "seed", { min: 0, max: 2 ** 32 - 1, fallback: randomSeed() });
  return {
    peers,
    query,
    queryText: formatQuery(query, 0),
    threshold,
    dropouts,
    dropoutAt: at as Phase | undefined,
    workers,
    seed,
    json: flags.values["json"] === true,
    cpuProf: flags.values["cpu-prof"] as string | undefined,
    neighbors,
    uploads: flags.values["uploads"] === undefined
      ? undefined
      : integerFlag(flags, "uploads", { min: 1, max: MAX_SPARSE_PARTICIPANTS }),
  };
}
