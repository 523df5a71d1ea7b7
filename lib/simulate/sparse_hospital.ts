/**
 * The simulation's hospital for a sparse round (`--neighbors K`), until the
 * one-shot `sumshare hospital` takes `--neighbors` itself (lib/cli.ts, the
 * service engineer's; the lines it needs are in this session's report):
 * the same steps as that command — the terms from lib/runtime/terms.ts, the
 * real runtime (runStarHospital) and the same JSON report (starReport) —
 * for the flags the simulator passes. Nothing here is simulation-only
 * protocol: the round is the product's.
 *
 * @module
 */

import { UsageError } from "../errors.ts";
import { loadIdentity } from "../identity.ts";
import {
  addressFlag,
  CREDENTIAL_FLAGS,
  credentialPaths,
  integerFlag,
  joinTimeoutFlag,
  parseFlags,
  scaledFlag,
  stringFlag,
  timeoutFlag,
} from "../options.ts";
import { parseQuery } from "../query.ts";
import { runStarHospital } from "../runtime/hospital.ts";
import {
  DEFAULT_TIMEOUT_SECONDS,
  peerCap,
  roundTerms,
  sparseGraphOption,
} from "../runtime/terms.ts";
import { starReport } from "../service/report.ts";
import { formatHostPort } from "../names.ts";
import { MAX_PARTICIPANTS } from "../wire/messages.ts";

/** Where it writes. */
export interface HospitalConsole {
  out(line: string): void;
  err(line: string): void;
}

/** Runs `hospital --neighbors K …` as the simulator calls it; the exit code. */
export async function sparseHospitalCommand(args: string[], io: HospitalConsole): Promise<number> {
  const flags = parseFlags(args, {
    ...CREDENTIAL_FLAGS,
    listen: { type: "string" },
    peers: { type: "string" },
    query: { type: "string" },
    max: { type: "string" },
    "max-rows": { type: "string" },
    threshold: { type: "string" },
    neighbors: { type: "string" },
    timeout: { type: "string" },
    json: { type: "boolean" },
  });
  const listen = addressFlag(flags, "listen", { allowZero: true });
  const peers = integerFlag(flags, "peers", { min: 2, max: peerCap(true) });
  const max = scaledFlag(flags, "max", 0, 1_000_000n);
  const maxRows = integerFlag(flags, "max-rows", { min: 1, max: 2 ** 31, fallback: 1 });
  const query = parseQuery(stringFlag(flags, "query", "sum"), 0);
  const given = flags.values["threshold"] === undefined
    ? undefined
    : integerFlag(flags, "threshold", { min: 1, max: MAX_PARTICIPANTS });
  const timeoutMs = timeoutFlag(flags, DEFAULT_TIMEOUT_SECONDS);
  const sparse = sparseGraphOption(flags.values["neighbors"] as string, {
    peers,
    threshold: given,
  });
  if (!sparse) throw new UsageError("sparse hospital: --neighbors is missing");
  const terms = roundTerms({
    query,
    scale: 0,
    max,
    maxRows,
    peers,
    threshold: sparse.threshold,
    minContributors: 2,
    phaseTimeoutMs: timeoutMs,
    neighbors: sparse.neighbors,
  });
  const identity = await loadIdentity("hospital", credentialPaths(flags, "hospital"), {
    use: "hospital",
  });
  const log = (line: string) => io.err(line);
  const round = await runStarHospital({
    identity,
    listen,
    peers,
    terms,
    joinTimeoutMs: joinTimeoutFlag(flags, timeoutMs),
    log,
    onListening: (address) => log(`listening on ${formatHostPort(address)}`),
  });
  io.out(JSON.stringify(starReport(round, terms, query)));
  return 0;
}
