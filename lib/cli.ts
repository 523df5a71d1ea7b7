/**
 * The command line: `sumshare hospital | peer | certs | run`. Parses flags,
 * loads credentials and hands over to the role; maps outcomes to exit codes
 * (0 success, 1 the round or command failed, 2 usage error).
 *
 * @module
 */

import config from "../deno.json" with { type: "json" };
import { runDemo } from "./demo.ts";
import { stamped } from "./log.ts";
import {
  describeError,
  FileError,
  isExpectedError,
  RoundAbortedError,
  UsageError,
} from "./errors.ts";
import { loadIdentity } from "./identity.ts";
import { formatHostPort } from "./names.ts";
import {
  addressFlag,
  CREDENTIAL_FLAGS,
  credentialPaths,
  integerFlag,
  joinTimeoutFlag,
  listFlag,
  nameFlag,
  type ParsedFlags,
  parseFlags,
  scaledFlag,
  stringFlag,
  timeoutFlag,
} from "./options.ts";
import { dataFromValue, type PeerData, readInputFile } from "./input.ts";
import { samplePeakRss, trackPeakRss } from "./memory.ts";
import { terminalProgress } from "./progress.ts";
import {
  DEFAULT_MAX,
  DEFAULT_MAX_ROWS,
  encodeInput,
  InputError,
  parseQuery,
  vectorLayout,
} from "./query.ts";
import { runStarHospital } from "./runtime/hospital.ts";
import { runStarPeer } from "./runtime/peer.ts";
import {
  assertThresholdFloors,
  DEFAULT_TIMEOUT_SECONDS,
  peerCap,
  roundTerms,
  sparseGraphOption,
} from "./runtime/terms.ts";
import type { Terms } from "./wire/messages.ts";
import { MAX_SCALE } from "./decimal.ts";
import {
  checkReceiptTarget,
  createStarReceipt,
  InvalidReceiptError,
  parseReceipt,
  type VerifiedStarReceipt,
  verifyStarReceipt,
  writeReceiptFile,
} from "./receipt.ts";
import {
  addParties,
  createConsortium,
  PartyExistsError,
  revokeParties,
  writeConsortium,
} from "./pki.ts";
import { MAX_PARTICIPANTS, MAX_SPARSE_PARTICIPANTS } from "./wire/messages.ts";
import { starReport } from "./service/report.ts";
import {
  checkResultTarget,
  formatStatistic,
  presentReport,
  writeResultFile,
} from "./service/present.ts";

/** The program version, as deno.json states it. */
export const VERSION: string = config.version;

/** Where a command writes: injectable so tests can capture it. */
export interface Console {
  out(line: string): void;
  err(line: string): void;
  /** stdout is a terminal: long vectors are previewed, histograms drawn. */
  terminal?: boolean;
  /** Log lines get a timestamp (default; a test may turn it off to compare lines). */
  stamp?: boolean;
}

const SYSTEM_CONSOLE: Console = {
  out: (line) => console.log(line),
  err: (line) => console.error(line),
  terminal: Deno.stdout.isTerminal(),
  stamp: true,
};

/**
 * The log of a one-shot command: every line stamped with the time, as the
 * serving hospital's and the agents' are (readers take it off with
 * lib/log.ts `unstamped`).
 */
function logOf(io: Console): (line: string) => void {
  return io.stamp === false ? io.err : (line) => io.err(stamped(line));
}

const MAIN_HELP = `sumshare ${VERSION}: the sum of private values, without revealing any one of them

Usage: sumshare <command> [options]

Commands:
  run        the whole protocol on this machine, as separate processes (a demo)
  hospital   wait for peers, run one round, print the sum (--serve: a standing service)
  peer       join a round with a private value (--serve --config FILE: a standing agent)
  certs      make a consortium PKI: a CA and a key and certificate per party
  verify     check a round's receipt against the consortium CA
  ask        ask a serving hospital one question, e.g. 'sumshare ask mean chol'
  simulate   a round of many peers in worker processes on this machine, timed and checked
  help       this text; 'sumshare <command> --help' for a command's options

Exit codes: 0 success, 1 the round or command failed (reason on stderr), 2 usage error.`;

const HOSPITAL_HELP = `Usage: sumshare hospital --listen HOST:PORT --peers N [options]

Waits for N authenticated peers, runs one round and prints the sum.

Options:
  --listen HOST:PORT   where peers connect (port 0 picks a free port)
  --peers N            how many peers the round needs (2 to ${MAX_PARTICIPANTS}; with
                       --neighbors, to ${MAX_SPARSE_PARTICIPANTS})
  --certs DIR          credentials: DIR/ca.crt, DIR/NAME.crt, DIR/NAME.key (default: certs)
  --ca FILE --cert FILE --key FILE
                       credentials as three files instead of --certs
  --revoked FILE       the CA's signed deny-list (default: revoked.json next to ca.crt,
                       when there): a revoked peer is refused when it connects; a list
                       that does not verify stops the command
  --name NAME          this party's name, the CN of its certificate (default: hospital)
  --query Q            sum (default), count, mean, variance, histogram:LOW:HIGH:BINS or vector:D
  --scale S            inputs are decimals with up to S places (fixed-point; default 0)
  --max R              the largest allowed input value (default: 2^30 = ${DEFAULT_MAX});
                       every element's N × bound must be below p
  --max-rows M         the most rows one peer may hold (default: ${DEFAULT_MAX_ROWS})
  --threshold T        threshold mode (T > N/2): peers that drop out are left out while at
                       least T confirm, survive and sign the survivors; default n-of-n,
                       where every peer's input counts or the round aborts
  --min-contributors F threshold mode: never reveal a sum over fewer than F inputs (default 2);
                       protecting k honest inputs against c colluders needs T and F >= k + c
  --neighbors K|auto   sparse pairing (threshold mode, 2T > K + 1; a given K defaults to
                       T = K/2 + 2): each peer pairs with K neighbours in a Harary graph; auto
                       picks K and T for N, 5 % colluders and 5 % dropouts (failure below
                       2^-40); up to 10000 peers. Peers then trust the hospital with who
                       neighbours whom, and a peer's floor is checked against the roster's
                       size, not the set summed (docs/threat-model.md, "Sparse rounds")
  --timeout SEC        how long each phase may take (default: ${DEFAULT_TIMEOUT_SECONDS})
  --join-timeout SEC   how long to wait for the peers to connect (default: --timeout if
                       given, else 600)
  --uploads U          how many masked inputs may be on their way at once (default: as many
                       vectors as fit in 64 MiB, at least 2); fewer hold less memory but put
                       uploads in series: allow ⌈N/U⌉ × one vector's upload time in --timeout
  --out FILE           write a verifiable receipt to FILE, readable by the owner only
                       (check it with 'sumshare verify'); refused before listening if
                       FILE cannot be written
  --result FILE        also write the whole result to FILE: CSV (.csv: one row per vector
                       element, histogram bin or statistic) or JSON (.json: the report);
                       on a terminal a vector of more than 20 values is only previewed,
                       and without --result its values go to ./sumshare-result-SESSION.csv
  --json               print the result as one JSON object on stdout (a failure as
                       {"error": {"kind", "message"}})
  -h, --help           this text

Exit codes: 0 the result is printed (and the receipt written); 1 the round failed,
or the result is printed but the receipt could not be written (the reason on
stderr); 2 usage error, or --out cannot be written.`;

const PEER_HELP =
  `Usage: sumshare peer --name NAME (--value V | --input FILE) --hospital HOST:PORT [options]
       sumshare peer --config FILE [--variable VAR] [options]

Joins the hospital's round with private data, over one mutual-TLS connection to
the hospital (a peer never listens). The data leave this process only masked,
random-looking on their own; the peer never learns the sum.

Options:
  --name NAME          this party's name, the CN of its certificate
  --value V            the private value (or, for vector:D queries, D values separated by commas)
  --input FILE         the private data: a JSON array, a CSV file (with --column), or one
                       number per line
  --column NAME        the CSV column to use
  --scale S            decimal places the data may have; must be the round's (default 0)
  --hospital HOST:PORT where the hospital listens
  --hospital-name NAME the hospital's certificate name (default: hospital)
  --certs DIR          credentials: DIR/ca.crt, DIR/NAME.crt, DIR/NAME.key (default: certs)
  --ca FILE --cert FILE --key FILE
                       credentials as three files instead of --certs
  --revoked FILE       the CA's signed deny-list (default: revoked.json next to ca.crt,
                       when there): a round whose roster holds a revoked party is refused
  --timeout SEC        how long each phase may take (default: ${DEFAULT_TIMEOUT_SECONDS})
  --join-timeout SEC   how long to wait for the hospital's invitation (default: --timeout
                       if given, else 600)
  --config FILE        take the name, hospital, credentials and data from an agent config
                       (as for 'peer --serve'): one round, under the config's policy, logged
                       in its audit log; --name, --hospital, --hospital-name and the
                       credential flags override the config; the hospital may start later
  --variable VAR       with --config: the [data.VAR] this round is about (a one-shot
                       hospital's --query names no variable); default: the config's only one
  --json               print the outcome as one JSON object on stdout
  -h, --help           this text`;

const CERTS_HELP = `Usage: sumshare certs --names hospital,alice,bob [options]
       sumshare certs --add dave,erin [options]
       sumshare certs --revoke dave [--out DIR]

Makes a consortium PKI: a CA, and for every name an ECDSA P-256 key and a
certificate with CN = name. Keys are written readable by the owner only.
With --add, issues new parties from the CA already in --out (ca.crt and
ca.key), so every existing party stays valid.

Options:
  --names LIST   make a NEW CA and these parties (1–32 of a–z, 0–9, '-', '_')
  --add LIST     issue these parties from the existing CA in --out; refuses
                 names whose .crt or .key exist
  --revoke LIST  add these parties to DIR/revoked.json, the deny-list signed with the
                 CA in --out (each with its certificate's serial and fingerprint when
                 DIR/NAME.crt is there) and a higher sequence number; the hospital and
                 every agent load it from next to their ca.crt (or --revoked FILE) and
                 refuse a revoked party: give every party the new file
  --out DIR      where to write, and with --add or --revoke where the CA is (default: certs)
  --hosts LIST   host names and IPs for every new certificate's SANs
                 (default: localhost,127.0.0.1)
  --days N       validity in days, at most the CA's (default: 365)
  --force        with --names, replace existing files: this makes a NEW CA,
                 and every existing party must get new certificates
  -h, --help     this text`;

const RUN_HELP = `Usage: sumshare run [--values 12,30,7 | --peers N] [--scale S] [--timeout SEC]

Runs a whole round on this machine: makes a throwaway PKI, starts the hospital
and the peers as separate processes talking TLS on loopback, prints a timeline
and the sum, and checks it against the plaintext total (which only a demo
operator, who chose every input, can know).

Options:
  --values LIST  the peers' inputs (their count is the number of peers)
  --peers N      the number of peers, with random inputs (default: 3)
  --scale S      inputs are decimals with up to S places, for every party (default 0)
  --timeout SEC  each party's timeout (default: ${DEFAULT_TIMEOUT_SECONDS})
  -h, --help     this text`;

const VERIFY_HELP = `Usage: sumshare verify FILE --ca ca.crt [--json]

Checks a hospital's receipt without trusting the hospital: every certificate
chains to the consortium CA, the hospital's signature covers the receipt, every
partial sum is signed by its peer for this session and contributor set, and the
sum equals the one recomputed from the signed partial sums.

Exit codes: 0 valid; 1 not valid (the reason on stdout), or FILE or the CA
cannot be read or the CA is not a CA certificate (the reason on stderr);
2 usage error.

Options:
  --ca FILE    the consortium CA certificate
  --json       print the verdict as one JSON object
  -h, --help   this text`;

const HELP_FLAG = { help: { type: "boolean", short: "h" } } as const;

/** The commands {@linkcode main} runs, each with a help page of its own. */
const KNOWN_COMMANDS = new Set(["hospital", "peer", "ask", "certs", "run", "simulate", "verify"]);

/** Runs the CLI and returns the exit code. */
export async function main(args: string[], io: Console = SYSTEM_CONSOLE): Promise<number> {
  const [command, ...rest] = args;
  try {
    switch (command) {
      case "hospital":
        return await hospitalCommand(rest, io);
      case "peer":
        return await peerCommand(rest, io);
      case "ask": {
        // Loaded only when used: the one-shot commands start as fast as before.
        const { ASK_HELP, askCommand } = await import("./service/commands.ts");
        if (wantsHelp(rest, ASK_HELP, io)) return 0;
        return await askCommand(rest, io);
      }
      case "certs":
        return await certsCommand(rest, io);
      case "run":
        return await runCommand(rest, io);
      case "simulate": {
        const { simulateCommand } = await import("./simulate/main.ts");
        return await simulateCommand(rest, io);
      }
      case "verify":
        return await verifyCommand(rest, io);
      case undefined:
      case "help":
      case "-h":
      case "--help":
        io.out(MAIN_HELP);
        return command === undefined ? 2 : 0;
      case "--version":
      case "version":
        io.out(`sumshare ${VERSION}`);
        return 0;
      default:
        throw new UsageError(`Unknown command ${JSON.stringify(command)}`);
    }
  } catch (error) {
    if ((command === "hospital" || command === "peer") && rest.includes("--json")) {
      // Scripts that asked for JSON get the failure as JSON too; stderr still says it.
      io.out(JSON.stringify({
        error: {
          kind: error instanceof UsageError
            ? "usage"
            : error instanceof RoundAbortedError
            ? "round"
            : "error",
          message: describeError(error),
        },
      }));
    }
    if (error instanceof UsageError) {
      io.err(`sumshare: ${error.message}`);
      // The command's own help, if the command exists; the overview otherwise (review 17).
      const known = command !== undefined && KNOWN_COMMANDS.has(command);
      // A served role's options are on its own page (review 18).
      const serve = known && (command === "hospital" || command === "peer") &&
        rest.includes("--serve");
      io.err(`Try 'sumshare ${known ? command + " " : ""}${serve ? "--serve " : ""}--help'.`);
      return 2;
    }
    if (error instanceof RoundAbortedError) {
      io.err(`sumshare ${command}: round aborted: ${error.message}`);
    } else if (isExpectedError(error)) {
      io.err(`sumshare ${command}: ${describeError(error)}`);
    } else {
      io.err(
        `sumshare ${command}: unexpected error (a bug): ${
          error instanceof Error ? error.stack : error
        }`,
      );
    }
    return 1;
  }
}

function joinTimeout(flags: ParsedFlags, phaseMs: number): number {
  return joinTimeoutFlag(flags, phaseMs);
}

function wantsHelp(args: string[], help: string, io: Console): boolean {
  if (!args.includes("--help") && !args.includes("-h")) return false;
  io.out(help);
  return true;
}

async function hospitalCommand(args: string[], io: Console): Promise<number> {
  if (args.includes("--serve")) {
    const { SERVE_HELP, serveCommand } = await import("./service/commands.ts");
    if (wantsHelp(args, SERVE_HELP, io)) return 0;
    return await serveCommand(args, io);
  }
  if (wantsHelp(args, HOSPITAL_HELP, io)) return 0;
  const flags = parseFlags(args, {
    ...HELP_FLAG,
    ...CREDENTIAL_FLAGS,
    listen: { type: "string" },
    peers: { type: "string" },
    name: { type: "string" },
    query: { type: "string" },
    scale: { type: "string" },
    max: { type: "string" },
    "max-rows": { type: "string" },
    threshold: { type: "string" },
    "min-contributors": { type: "string" },
    neighbors: { type: "string" },
    timeout: { type: "string" },
    "join-timeout": { type: "string" },
    uploads: { type: "string" },
    out: { type: "string" },
    result: { type: "string" },
    json: { type: "boolean" },
  });
  const name = nameFlag(flags, "name", "hospital");
  const listen = addressFlag(flags, "listen", { allowZero: true });
  const peers = integerFlag(flags, "peers", {
    min: 2,
    max: peerCap(flags.values["neighbors"] !== undefined),
  });
  const scale = integerFlag(flags, "scale", { min: 0, max: MAX_SCALE, fallback: 0 });
  const max = scaledFlag(flags, "max", scale, DEFAULT_MAX * 10n ** BigInt(scale));
  const maxRows = integerFlag(flags, "max-rows", {
    min: 1,
    max: 2 ** 31,
    fallback: DEFAULT_MAX_ROWS,
  });
  let query;
  try {
    query = parseQuery(stringFlag(flags, "query", "sum"), scale);
  } catch (cause) {
    throw new UsageError((cause as Error).message, { cause });
  }
  const threshold = flags.values["threshold"] === undefined
    ? undefined
    : integerFlag(flags, "threshold", { min: 1, max: MAX_PARTICIPANTS });
  const minContributors = integerFlag(flags, "min-contributors", {
    min: 0,
    max: MAX_PARTICIPANTS,
    fallback: 2,
  });
  // --neighbors makes a threshold round too (its T defaults from K; review 18).
  const thresholdMode = threshold !== undefined || flags.values["neighbors"] !== undefined;
  if (!thresholdMode && flags.values["min-contributors"] !== undefined) {
    throw new UsageError(
      "--min-contributors goes with --threshold or --neighbors: an additive round needs every peer",
    );
  }
  const timeoutMs = timeoutFlag(flags, DEFAULT_TIMEOUT_SECONDS);
  const joinTimeoutMs = joinTimeout(flags, timeoutMs);
  const uploads = flags.values["uploads"] === undefined
    ? undefined
    : integerFlag(flags, "uploads", { min: 1, max: MAX_SPARSE_PARTICIPANTS });
  const out = typeof flags.values["out"] === "string" ? flags.values["out"] : undefined;
  let sparse: ReturnType<typeof sparseGraphOption>;
  try {
    sparse = sparseGraphOption(flags.values["neighbors"] as string | undefined, {
      peers,
      threshold,
    });
  } catch (cause) {
    throw new UsageError((cause as Error).message, { cause });
  }
  if (sparse && out !== undefined) {
    throw new UsageError("--out: receipts of sparse rounds (--neighbors) are not supported yet");
  }
  let terms: ReturnType<typeof roundTerms>;
  try {
    // Refuse a round that cannot be represented exactly (R not below p, a
    // total too large even for residues, too long a vector), that threshold
    // mode cannot carry, or that breaks a privacy floor, before anything is sent.
    terms = roundTerms({
      query,
      scale,
      max,
      maxRows,
      peers,
      threshold: sparse?.threshold ?? threshold,
      minContributors,
      neighbors: sparse?.neighbors,
      phaseTimeoutMs: timeoutMs,
    });
    if (!sparse && threshold !== undefined) {
      assertThresholdFloors(peers, threshold, minContributors);
    }
    // A receipt that cannot be written is refused now, not after every peer
    // has taken part.
    if (out !== undefined) await checkReceiptTarget(out);
  } catch (cause) {
    throw new UsageError((cause as Error).message, { cause });
  }
  const resultFile = typeof flags.values["result"] === "string"
    ? flags.values["result"]
    : undefined;
  if (resultFile !== undefined) await checkResultTarget(resultFile);
  const identity = await loadIdentity(name, credentialPaths(flags, name), {
    use: "hospital",
    warn: logOf(io),
  });
  const hospitalProgress = terminalProgress();
  if (sparse) {
    logOf(io)(
      `sparse pairing: each peer pairs with ${sparse.neighbors} neighbours, threshold ${sparse.threshold} ` +
        `per neighbourhood${
          flags.values["neighbors"] === "auto"
            ? ` (chosen for ${peers} peers, 5 % colluders and 5 % dropouts)`
            : ""
        }`,
    );
  }
  const round = await runStarHospital({
    identity,
    listen,
    peers,
    terms,
    joinTimeoutMs,
    ...(uploads !== undefined ? { uploads } : {}),
    log: logOf(io),
    onListening: (address) => logOf(io)(`listening on ${formatHostPort(address)}`),
    ...(hospitalProgress ? { onProgress: hospitalProgress } : {}),
  });
  const report = starReport(round, terms, query);
  // The result first: whatever happens to the receipt, it is not lost.
  if (flags.values["json"]) {
    io.out(JSON.stringify(report));
    if (resultFile !== undefined) await writeResultFile(resultFile, report);
  } else {
    await presentReport(report, io, { resultFile });
  }
  if (out !== undefined) {
    const receipt = await createStarReceipt(
      round.outcome.evidence,
      round.outcome.result,
      identity.privateKey,
    );
    try {
      await writeReceiptFile(out, receipt);
    } catch (error) {
      if (!(error instanceof FileError)) throw error;
      io.err(`sumshare hospital: ${error.message}; the result is printed above, without a receipt`);
      return 1;
    }
    io.err(`receipt written to ${out}`);
  }
  return 0;
}

/**
 * The peer's data as the round's vector: the peer checks the round's scale
 * against its own, and the hospital's bounds through the layout it computes
 * itself from the terms; any refusal names where, never what.
 */
function encodePeerInput(data: PeerData, scale: number, terms: Terms): Float64Array {
  if (terms.scale !== scale) {
    throw new InputError(
      `the round reads decimals at scale ${terms.scale}; this peer's data was read at --scale ${scale}`,
    );
  }
  const query = parseQuery(terms.query, terms.scale);
  const layout = vectorLayout(query, {
    max: terms.max,
    maxRows: terms.maxRows,
    participants: terms.participants,
  });
  return encodeInput(query, data, { scale, layout });
}

/** Reads the peer's data, parsing every number at the given scale. */
async function peerData(flags: ParsedFlags, scale: number): Promise<PeerData> {
  const value = flags.values["value"];
  const input = flags.values["input"];
  const column = typeof flags.values["column"] === "string" ? flags.values["column"] : undefined;
  if ((value === undefined) === (input === undefined)) {
    throw new UsageError("Give exactly one of --value and --input");
  }
  if (column !== undefined && input === undefined) {
    throw new UsageError("--column goes with --input");
  }
  try {
    const data = typeof value === "string"
      ? dataFromValue(value, scale)
      : await readInputFile(String(input), { scale, column });
    if (data.values.length === 0) throw new InputError("no numbers in the file");
    return data;
  } catch (error) {
    // The messages name where, never what: the numbers are private.
    if (error instanceof InputError) {
      throw new UsageError(
        `Invalid ${typeof value === "string" ? "" : "--input "}${error.message}`,
      );
    }
    throw error;
  }
}

async function peerCommand(args: string[], io: Console): Promise<number> {
  if (args.includes("--serve")) {
    const { AGENT_HELP, agentCommand } = await import("./agent/command.ts");
    if (wantsHelp(args, AGENT_HELP, io)) return 0;
    return await agentCommand(args, io);
  }
  if (wantsHelp(args, PEER_HELP, io)) return 0;
  if (args.some((a) => a === "--config" || a.startsWith("--config="))) {
    const { oneShotCommand } = await import("./agent/command.ts");
    return await oneShotCommand(args, io);
  }
  const flags = parseFlags(args, {
    ...HELP_FLAG,
    ...CREDENTIAL_FLAGS,
    name: { type: "string" },
    value: { type: "string" },
    input: { type: "string" },
    column: { type: "string" },
    scale: { type: "string" },
    hospital: { type: "string" },
    "hospital-name": { type: "string" },
    timeout: { type: "string" },
    "join-timeout": { type: "string" },
    json: { type: "boolean" },
  });
  const name = nameFlag(flags, "name");
  const scale = integerFlag(flags, "scale", { min: 0, max: MAX_SCALE, fallback: 0 });
  if (flags.values["json"]) trackPeakRss(); // reported in the JSON, for the benchmark
  const data = await peerData(flags, scale);
  const hospital = addressFlag(flags, "hospital");
  const hospitalName = nameFlag(flags, "hospital-name", "hospital");
  const timeoutMs = timeoutFlag(flags, DEFAULT_TIMEOUT_SECONDS);
  if (name === hospitalName) throw new UsageError("A peer cannot use the hospital's name");
  const identity = await loadIdentity(name, credentialPaths(flags, name), {
    use: "peer",
    warn: logOf(io),
  });
  const onProgress = terminalProgress();
  const round = await runStarPeer({
    identity,
    hospital,
    hospitalName,
    input: (terms) => encodePeerInput(data, scale, terms),
    inviteTimeoutMs: joinTimeout(flags, timeoutMs),
    log: logOf(io),
    ...(onProgress ? { onProgress } : {}),
  });
  const result = {
    session: round.session,
    contributors: round.outcome.set,
    bytesSent: round.bytesOut,
    bytesReceived: round.bytesIn,
  };
  if (flags.values["json"]) {
    io.out(JSON.stringify({
      status: "done",
      name,
      session: result.session,
      contributors: result.contributors,
      bytesSent: result.bytesSent,
      bytesReceived: result.bytesReceived,
      peakRssBytes: samplePeakRss(),
    }));
  } else {
    io.out(`round ${result.session} done`);
  }
  return 0;
}

async function certsCommand(args: string[], io: Console): Promise<number> {
  if (wantsHelp(args, CERTS_HELP, io)) return 0;
  const flags = parseFlags(args, {
    ...HELP_FLAG,
    out: { type: "string" },
    names: { type: "string" },
    add: { type: "string" },
    hosts: { type: "string" },
    days: { type: "string" },
    force: { type: "boolean" },
    revoke: { type: "string" },
  });
  if (flags.values["revoke"] !== undefined) return await revokeCommand(flags, io);
  const adding = flags.values["add"] !== undefined;
  if (adding && flags.values["names"] !== undefined) {
    throw new UsageError(
      "Use either --names (a new CA) or --add (parties for the existing CA), not both",
    );
  }
  if (adding && flags.values["force"] !== undefined) {
    throw new UsageError("--add never replaces files; --force goes with --names (a new CA)");
  }
  const listName = adding ? "add" : "names";
  const names = listFlag(flags, listName);
  for (const name of names) nameFlag({ values: { [listName]: name }, positionals: [] }, listName);
  if (new Set(names).size !== names.length) {
    throw new UsageError(`Invalid --${listName}: a party name is repeated`);
  }
  const hosts = listFlag(flags, "hosts", "localhost,127.0.0.1");
  const days = integerFlag(flags, "days", { min: 1, max: 3650, fallback: 365 });
  const dir = stringFlag(flags, "out", "certs");
  if (adding) {
    let added;
    try {
      added = await addParties(dir, names, { hosts, days });
    } catch (error) {
      // Asking for a party that exists is a usage error (exit 2), like a repeated name.
      if (error instanceof PartyExistsError) throw new UsageError(error.message, { cause: error });
      throw error;
    }
    io.err(
      `wrote ${added.written.length} files to ${dir}: a .crt and .key for ${
        names.join(", ")
      }, issued by the existing CA in ${dir}`,
    );
    io.err(
      `valid until ${added.notAfter.toISOString()}${
        added.cutToCa ? " (cut to the CA's own expiry)" : ""
      }; existing parties are unchanged`,
    );
    io.err("give each new party ca.crt and only its own .crt and .key");
    return 0;
  }
  const force = flags.values["force"] === true;
  if (force) {
    io.err(
      "warning: --force makes a NEW CA: certificates from the old ca.crt will not verify, " +
        "so every existing party must get new certificates and the new ca.crt " +
        "(to add parties to the existing CA, use --add)",
    );
  }
  const consortium = await createConsortium(names, { hosts, days });
  const written = await writeConsortium(dir, consortium, { force });
  io.err(
    `wrote ${written.length} files to ${dir}: ca.crt, ca.key and a .crt and .key for ${
      names.join(", ")
    }`,
  );
  io.err("keep ca.key offline; give each party ca.crt and only its own .crt and .key");
  return 0;
}

/** `sumshare certs --revoke LIST [--out DIR]`. */
async function revokeCommand(flags: ParsedFlags, io: Console): Promise<number> {
  for (const other of ["names", "add", "force", "hosts", "days"]) {
    if (flags.values[other] !== undefined) {
      throw new UsageError(`--revoke goes alone with --out, not with --${other}`);
    }
  }
  const names = listFlag(flags, "revoke");
  for (const name of names) nameFlag({ values: { revoke: name }, positionals: [] }, "revoke");
  const dir = stringFlag(flags, "out", "certs");
  const { path, list, added } = await revokeParties(dir, names);
  for (const entry of added) {
    io.err(
      `revoked ${entry.name}${
        entry.serial === null
          ? ` (no ${entry.name}.crt in ${dir}: any certificate named ${entry.name} is refused)`
          : ` (certificate serial ${entry.serial})`
      }`,
    );
  }
  for (const name of names.filter((n) => !added.some((e) => e.name === n))) {
    io.err(`${name} was revoked already`);
  }
  io.err(
    `wrote ${path}, sequence ${list.sequence}, ${list.entries.length} revoked; give it to ` +
      "every party, next to its ca.crt (or point --revoked at it)",
  );
  return 0;
}

async function verifyCommand(args: string[], io: Console): Promise<number> {
  if (wantsHelp(args, VERIFY_HELP, io)) return 0;
  const flags = parseFlags(args, {
    ...HELP_FLAG,
    ca: { type: "string" },
    json: { type: "boolean" },
  }, {
    positionals: 1,
  });
  const file = flags.positionals[0];
  if (file === undefined) throw new UsageError("Missing the receipt FILE to verify");
  const caPem = await readFileFor("--ca", stringFlag(flags, "ca"));
  let verdict: { valid: true; receipt: VerifiedStarReceipt } | { valid: false; reason: string };
  try {
    const text = await readFileFor("receipt", file);
    verdict = { valid: true, receipt: await verifyStarReceipt(parseReceipt(text), caPem) };
  } catch (error) {
    if (!(error instanceof InvalidReceiptError)) throw error;
    verdict = { valid: false, reason: error.message };
  }
  if (flags.values["json"]) {
    io.out(JSON.stringify(
      verdict.valid
        ? {
          valid: true,
          result: verdict.receipt.result,
          query: verdict.receipt.query,
          session: verdict.receipt.session,
          mode: verdict.receipt.mode,
          threshold: verdict.receipt.threshold,
          contributors: verdict.receipt.contributors,
          linearCheck: verdict.receipt.linearCheck,
          unattested: verdict.receipt.unattested,
        }
        : verdict,
    ));
  } else if (verdict.valid) {
    const r = verdict.receipt;
    io.out(
      `VALID: ${describeResult(r.result)} over ${r.contributors.length} contributors (${
        r.contributors.join(", ")
      }), ` +
        `session ${r.session}, ${
          r.mode === "nofn" ? "n-of-n" : `threshold ${r.threshold}`
        } of ${r.participants.length} participants, signed by ${r.hospital}; ` +
        (r.linearCheck === "proven"
          ? "the result is proven to be the sum of the committed inputs"
          : `the result is not proven (no attestation from ${r.unattested.join(", ")})`),
    );
  } else {
    io.out(`NOT VALID: ${verdict.reason}`);
  }
  return verdict.valid ? 0 : 1;
}

/**
 * Reads a file named on the command line; a failure says which file it was.
 * A file that cannot be read fails the command (exit 1), as the help says: it
 * is not a usage error, and not a verdict on a receipt nobody could read.
 */
async function readFileFor(what: string, path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (cause) {
    throw new FileError(`Cannot read ${what} ${path}: ${(cause as Error).message}`, { cause });
  }
}

function describeResult(result: Record<string, unknown>): string {
  return Object.entries(result).map(([k, v]) => `${k} ${formatStatistic(v)}`).join(", ");
}

async function runCommand(args: string[], io: Console): Promise<number> {
  if (wantsHelp(args, RUN_HELP, io)) return 0;
  const flags = parseFlags(args, {
    ...HELP_FLAG,
    values: { type: "string" },
    peers: { type: "string" },
    scale: { type: "string" },
    timeout: { type: "string" },
  });
  if (flags.values["values"] !== undefined && flags.values["peers"] !== undefined) {
    throw new UsageError("Use either --values or --peers, not both");
  }
  const scale = integerFlag(flags, "scale", { min: 0, max: MAX_SCALE, fallback: 0 });
  // The demo's hospital uses the default R, scaled like every input.
  const max = DEFAULT_MAX * 10n ** BigInt(scale);
  let values: bigint[] | undefined;
  if (flags.values["values"] !== undefined) {
    values = listFlag(flags, "values").map((text) =>
      scaledFlag({ values: { values: text }, positionals: [] }, "values", scale)
    );
    if (values.length < 2 || values.length > MAX_PARTICIPANTS) {
      throw new UsageError(`Invalid --values: give 2 to ${MAX_PARTICIPANTS} values`);
    }
    if (values.some((v) => v > max)) {
      throw new UsageError(`Invalid --values: each must be at most R = ${DEFAULT_MAX}`);
    }
  }
  const peers = integerFlag(flags, "peers", { min: 2, max: MAX_PARTICIPANTS, fallback: 3 });
  try {
    // The demo's hospital runs a sum with these terms: refuse them here, as
    // a usage error, before any process starts (R = 2^30 × 10^scale reaches p
    // from --scale 7).
    vectorLayout(parseQuery("sum", scale), {
      max,
      maxRows: DEFAULT_MAX_ROWS,
      participants: values?.length ?? peers,
    });
  } catch (cause) {
    throw new UsageError((cause as Error).message, { cause });
  }
  const timeoutMs = timeoutFlag(flags, DEFAULT_TIMEOUT_SECONDS);
  const ok = await runDemo({ values, peers, scale, timeoutMs, io });
  return ok ? 0 : 1;
}
