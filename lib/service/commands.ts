/**
 * The commands of a standing consortium's hospital side: `sumshare hospital
 * --serve` (the service and its control socket) and `sumshare ask` (one
 * question through that socket). Exit codes as everywhere: 0 success, 1 the
 * round or command failed, 2 usage error.
 *
 * @module
 */

import { stamped as stampLine } from "../log.ts";
import { join, resolve } from "node:path";
import { describeError, FileError, TimeoutError, UsageError } from "../errors.ts";
import { loadIdentity } from "../identity.ts";
import { formatHostPort } from "../names.ts";
import {
  addressFlag,
  CREDENTIAL_FLAGS,
  credentialPaths,
  integerFlag,
  nameFlag,
  parseFlags,
  timeoutFlag,
} from "../options.ts";
import { DEFAULT_TIMEOUT_SECONDS } from "../runtime/terms.ts";
import { MAX_PARTICIPANTS } from "../wire/messages.ts";
import { AskQueryError, parseAskQuery } from "./ask_query.ts";
import { askControl, serveControl } from "./control.ts";
import { type AskRequest, HospitalService, RoundFailedError } from "./hospital.ts";
import { checkResultTarget, presentReport, writeResultFile } from "./present.ts";
import type { Report } from "./report.ts";

/** Where a command writes. */
export interface Io {
  out(line: string): void;
  err(line: string): void;
  /** stdout is a terminal: long vectors are previewed, histograms drawn. */
  terminal?: boolean;
}

/** The control socket's default name, in the hospital's working folder. */
export const DEFAULT_CONTROL = "sumshare.sock";

/** A log line with its time. */
export function stamped(io: Io): (line: string) => void {
  return (line) => io.err(stampLine(line));
}

export const SERVE_HELP = `Usage: sumshare hospital --serve [--listen HOST:PORT] [options]

Runs the hospital as a service: keeps every authenticated peer agent
connected and runs one round per question asked with 'sumshare ask' over the
local control socket. Each round gets a fresh session and fresh keys; a
failed round is reported to the asker and the service goes on.

Options:
  --listen HOST:PORT   where agents connect (default: 127.0.0.1:7000; port 0 picks one)
  --control FILE       the control socket, created readable and writable by this
                       user only (default: ./${DEFAULT_CONTROL})
  --receipts DIR       write each completed round's receipt to DIR/SESSION.json (0600)
  --certs DIR | --ca FILE --cert FILE --key FILE
                       credentials, as for 'sumshare hospital'
  --revoked FILE       the CA's signed deny-list (default: revoked.json next to ca.crt,
                       when there): a revoked agent is refused when it connects
  --name NAME          this party's name (default: hospital)
  --timeout SEC        how long each phase of a round may take (default: ${DEFAULT_TIMEOUT_SECONDS})
  -h, --help           this text

Stops on SIGINT or SIGTERM.`;

export const ASK_HELP = `Usage: sumshare ask [options] QUERY

Asks the serving hospital one question and prints the result. QUERY names a
variable the agents hold:
  sum VAR | count VAR | mean VAR | variance VAR | histogram VAR LOW:HIGH:BINS | vector VAR

Options:
  --control FILE       the hospital's control socket (default: ./${DEFAULT_CONTROL})
  --peers N            wait up to --timeout until the hospital serves and N agents
                       are connected (any agents: the question then fails at once
                       when fewer than N of them hold VAR)
  --threshold T        a threshold round (T > N/2) instead of n-of-n
  --min-contributors F with --threshold: never a sum over fewer than F inputs (default 2)
  --timeout SEC        how long to wait for --peers (default: ${DEFAULT_TIMEOUT_SECONDS})
  --result FILE        also write the whole result to FILE: CSV (.csv: one row per vector
                       element, histogram bin or statistic) or JSON (.json: the report);
                       on a terminal a vector of more than 20 values is only previewed,
                       and without --result its values go to ./sumshare-result-SESSION.csv
  --json               print the result, or the failure as {"error": …}, as one JSON object

Output: each statistic on a line (a variance as population and sample variance
and standard deviation, each labelled; a histogram with its bin edges, drawn
as bars on a terminal), then "over K of N peers: NAMES", the contributor set.
  -h, --help           this text

Exit codes: 0 the result is printed; 1 the round failed; 2 usage error.`;

/** `sumshare hospital --serve`: runs until SIGINT or SIGTERM. */
export async function serveCommand(args: string[], io: Io): Promise<number> {
  const flags = parseFlags(args, {
    ...CREDENTIAL_FLAGS,
    serve: { type: "boolean" },
    listen: { type: "string" },
    control: { type: "string" },
    receipts: { type: "string" },
    name: { type: "string" },
    timeout: { type: "string" },
  });
  const name = nameFlag(flags, "name", "hospital");
  const listen = addressFlag(flags, "listen", { allowZero: true, fallback: "127.0.0.1:7000" });
  const control = resolve(
    typeof flags.values["control"] === "string" ? flags.values["control"] : DEFAULT_CONTROL,
  );
  const receipts = typeof flags.values["receipts"] === "string"
    ? resolve(flags.values["receipts"])
    : undefined;
  const phaseTimeoutMs = timeoutFlag(flags, DEFAULT_TIMEOUT_SECONDS);
  if (receipts !== undefined) await checkReceiptsDir(receipts);
  const log = stamped(io);
  const identity = await loadIdentity(name, credentialPaths(flags, name), {
    use: "hospital",
    warn: log,
  });
  const service = await HospitalService.start({
    identity,
    listen,
    phaseTimeoutMs,
    receiptsDir: receipts,
    log,
  });
  let controlServer;
  try {
    controlServer = await serveControl(control, (request) => handleAsk(service, request), log);
  } catch (error) {
    service.close();
    throw error;
  }
  log(`listening on ${formatHostPort(service.address)}`);
  log(`control socket ${control} (ask with: sumshare ask --control ${control} QUERY)`);
  const stopped = Promise.withResolvers<void>();
  const stop = () => stopped.resolve();
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  try {
    await stopped.promise;
    log("stopping");
  } finally {
    Deno.removeSignalListener("SIGINT", stop);
    Deno.removeSignalListener("SIGTERM", stop);
    controlServer.close();
    service.close();
  }
  return 0;
}

async function checkReceiptsDir(dir: string): Promise<void> {
  try {
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    const probe = join(dir, `.probe-${crypto.randomUUID()}`);
    await Deno.writeTextFile(probe, "", { mode: 0o600 });
    await Deno.remove(probe);
  } catch (cause) {
    throw new UsageError(
      `Invalid --receipts ${dir}: cannot write there (${(cause as Error).message})`,
      { cause },
    );
  }
}

/** The service's side of one control request. */
async function handleAsk(service: HospitalService, request: unknown): Promise<unknown> {
  const ask = (request as { ask?: unknown } | undefined)?.ask as
    | Record<string, unknown>
    | undefined;
  const optionalInteger = (v: unknown) =>
    v === undefined || (Number.isSafeInteger(v) && (v as number) >= 1);
  if (
    typeof ask !== "object" || ask === null || typeof ask["variable"] !== "string" ||
    typeof ask["query"] !== "string" || !optionalInteger(ask["peers"]) ||
    !optionalInteger(ask["threshold"]) || !optionalInteger(ask["minContributors"]) ||
    !Number.isSafeInteger(ask["timeoutMs"])
  ) {
    return { ok: false, error: { kind: "usage", message: "Invalid request to the hospital" } };
  }
  try {
    const report = await service.ask(ask as unknown as AskRequest);
    return { ok: true, report };
  } catch (error) {
    return {
      ok: false,
      error: {
        kind: error instanceof RoundFailedError ? "round" : "error",
        message: describeError(error),
      },
    };
  }
}

/** `sumshare ask`. */
export async function askCommand(args: string[], io: Io): Promise<number> {
  const json = args.includes("--json");
  try {
    return await ask(args, io, json);
  } catch (error) {
    if (!json) throw error;
    const usage = error instanceof UsageError;
    io.out(JSON.stringify({
      error: { kind: usage ? "usage" : "error", message: describeError(error) },
    }));
    return usage ? 2 : 1;
  }
}

async function ask(args: string[], io: Io, json: boolean): Promise<number> {
  const flags = parseFlags(args, {
    control: { type: "string" },
    json: { type: "boolean" },
    peers: { type: "string" },
    threshold: { type: "string" },
    "min-contributors": { type: "string" },
    timeout: { type: "string" },
    result: { type: "string" },
  }, { positionals: 3 });
  let query;
  try {
    query = parseAskQuery(flags.positionals);
  } catch (cause) {
    if (cause instanceof AskQueryError) throw new UsageError(cause.message, { cause });
    throw cause;
  }
  const range = { min: 2, max: MAX_PARTICIPANTS };
  const peers = flags.values["peers"] === undefined
    ? undefined
    : integerFlag(flags, "peers", range);
  const threshold = flags.values["threshold"] === undefined
    ? undefined
    : integerFlag(flags, "threshold", { min: 1, max: MAX_PARTICIPANTS });
  const minContributors = flags.values["min-contributors"] === undefined
    ? undefined
    : integerFlag(flags, "min-contributors", range);
  if (threshold === undefined && minContributors !== undefined) {
    throw new UsageError(
      "--min-contributors goes with --threshold: an n-of-n round needs every peer",
    );
  }
  const timeoutMs = timeoutFlag(flags, DEFAULT_TIMEOUT_SECONDS);
  const control = resolve(
    typeof flags.values["control"] === "string" ? flags.values["control"] : DEFAULT_CONTROL,
  );
  const resultFile = typeof flags.values["result"] === "string"
    ? flags.values["result"]
    : undefined;
  if (resultFile !== undefined) await checkResultTarget(resultFile);
  const request: AskRequest = { ...query, peers, threshold, minContributors, timeoutMs };
  // The hospital bounds every phase; this bounds the wait for its answer all the same.
  const answer = await askControl(control, { ask: request }, timeoutMs + 15 * 60_000, {
    // Waiting for N agents includes waiting for the hospital that they connect to.
    connectWithinMs: peers === undefined ? 0 : timeoutMs,
    onWait: () =>
      io.err(`no hospital serves on ${control} yet; waiting up to ${timeoutMs / 1000} s for it`),
  })
    .catch((error) => {
      if (error instanceof FileError || error instanceof TimeoutError) throw error;
      throw new FileError(describeError(error), { cause: error });
    }) as {
      ok?: boolean;
      report?: Report;
      error?: { kind?: string; message?: string };
    };
  if (answer.ok !== true || answer.report === undefined) {
    const message = answer.error?.message ?? "the hospital gave no answer";
    if (json) io.out(JSON.stringify({ error: { kind: answer.error?.kind ?? "error", message } }));
    else io.err(`sumshare ask: ${message}`);
    return answer.error?.kind === "usage" ? 2 : 1;
  }
  const report = answer.report;
  if (json) {
    io.out(JSON.stringify(report));
    if (resultFile !== undefined) await writeResultFile(resultFile, report);
  } else {
    await presentReport(report, io, { resultFile, label: query.variable });
    if (typeof report["receipt"] === "string") io.err(`receipt written to ${report["receipt"]}`);
  }
  return 0;
}
