/**
 * `sumshare peer --serve --config FILE`: a data owner's standing agent. The
 * config file and the flags merge into one typed options object in one
 * pass ({@linkcode agentOptions}), flags winning.
 *
 * @module
 */

import { stamped } from "../log.ts";
import { RoundAbortedError, UsageError } from "../errors.ts";
import { loadIdentity } from "../identity.ts";
import type { HostPort } from "../names.ts";
import {
  addressFlag,
  CREDENTIAL_FLAGS,
  credentialPaths,
  joinTimeoutFlag,
  nameFlag,
  type ParsedFlags,
  parseFlags,
  stringFlag,
  timeoutFlag,
} from "../options.ts";
import { DEFAULT_TIMEOUT_SECONDS } from "../runtime/terms.ts";
import { runAgent, runOneRound } from "./agent.ts";
import { type AgentConfig, ConfigError, loadAgentConfig, type Variable } from "./config.ts";
import { AgentState } from "./state.ts";
import type { CredentialPaths } from "../identity.ts";

/** Where a command writes. */
export interface Io {
  out(line: string): void;
  err(line: string): void;
}

export const AGENT_HELP = `Usage: sumshare peer --serve --config FILE [options]

Runs this party's agent: stays connected to the serving hospital (retrying
with backoff while it is not up), and answers every round its policy allows,
reading the data file afresh for each. The config (TOML) names the party,
the hospital, the credentials, the variables and the policy; see
docs/reference.md. Relative paths in it are relative to the config file.

A round is joined only when its terms cover the variable's declaration, so
that joining never depends on the data: a scale at least the variable's
scale, an R at least its max (a histogram's LOW:HIGH from at most 0 to at
least max), a row limit at least its max_rows (a vector: exactly its
dimension). Data outside the declaration (a value below 0 or above max, more
rows than max_rows) refuses every round for that variable until it is fixed;
the log names the file, line and column, never the value. The hospital hears
only "refused by policy".

Options (each overrides the config's key of the same meaning):
  --config FILE        the agent's config (required)
  --name NAME          name
  --hospital HOST:PORT hospital
  --hospital-name NAME hospital_name
  --certs DIR | --ca FILE --cert FILE --key FILE
                       certs / ca, cert, key
  --revoked FILE       revoked: the CA's signed deny-list (default: revoked.json next to
                       ca.crt, when there); a revoked party in a round's roster is refused
  -h, --help           this text

Stops on SIGINT or SIGTERM.`;

/** The agent's options: the config with the flags applied. */
export interface AgentCommandOptions {
  config: AgentConfig;
  name: string;
  hospital: HostPort;
  hospitalName: string;
  credentials: CredentialPaths;
}

/** Merges the flags over the config file, in one pass; flags win. */
export async function agentOptions(flags: ParsedFlags): Promise<AgentCommandOptions> {
  let config: AgentConfig;
  try {
    config = await loadAgentConfig(stringFlag(flags, "config"));
  } catch (cause) {
    if (cause instanceof ConfigError) throw new UsageError(cause.message, { cause });
    throw cause;
  }
  const name = flags.values["name"] === undefined ? config.name : nameFlag(flags, "name");
  const hospital = flags.values["hospital"] !== undefined
    ? addressFlag(flags, "hospital")
    : config.hospital;
  if (hospital === undefined) {
    throw new UsageError(
      `Missing the hospital: give --hospital or hospital = "HOST:PORT" in the config`,
    );
  }
  const hospitalName = flags.values["hospital-name"] === undefined
    ? config.hospitalName
    : nameFlag(flags, "hospital-name");
  if (name === hospitalName) throw new UsageError("A peer cannot use the hospital's name");
  const { ca, cert, key, certs, revoked } = flags.values;
  const credentials = [ca, cert, key, certs].some((v) => v !== undefined)
    ? credentialPaths(flags, name)
    : config.credentials;
  if (typeof revoked === "string") credentials.revoked = revoked;
  return { config: { ...config, name }, name, hospital, hospitalName, credentials };
}

/** `sumshare peer --serve --config FILE`. */
export async function agentCommand(args: string[], io: Io): Promise<number> {
  const flags = parseFlags(args, {
    ...CREDENTIAL_FLAGS,
    serve: { type: "boolean" },
    config: { type: "string" },
    name: { type: "string" },
    hospital: { type: "string" },
    "hospital-name": { type: "string" },
  });
  const options = await agentOptions(flags);
  const identity = await loadIdentity(options.name, options.credentials, {
    use: "peer",
    warn: (line) => io.err(stamped(line)),
  });
  const state = await AgentState.open(options.config.statePath);
  const log = (line: string) => io.err(stamped(line));
  const stop = new AbortController();
  const onSignal = () => stop.abort(new Error("stopped"));
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  log(
    `agent ${options.name}: variables ${
      [...options.config.variables.keys()].join(", ")
    }; audit log ${options.config.auditPath}`,
  );
  try {
    await runAgent({
      config: { ...options.config, hospitalName: options.hospitalName },
      identity,
      state,
      hospital: options.hospital,
      log,
      signal: stop.signal,
    });
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
  return 0;
}

/** The variable a one-shot round is about: `--variable VAR`, or the config's only one. */
export function oneShotVariable(config: AgentConfig, flags: ParsedFlags): Variable {
  const names = [...config.variables.keys()];
  const wanted = flags.values["variable"];
  if (typeof wanted === "string") {
    const variable = config.variables.get(wanted);
    if (variable === undefined) {
      throw new UsageError(
        `Invalid --variable: ${config.path} has no [data.${wanted}] (it has ${names.join(", ")})`,
      );
    }
    return variable;
  }
  if (names.length !== 1) {
    throw new UsageError(
      `Missing --variable: ${config.path} holds ${names.join(", ")}; ` +
        "a one-shot hospital's --query names no variable, so say which one this round is about",
    );
  }
  return config.variables.get(names[0]!)!;
}

/**
 * \`sumshare peer --config FILE\` without \`--serve\`: one round with the
 * config's credentials, hospital, data and policy, logged in its audit log.
 * Prints what the one-shot \`peer\` prints; exit 1 when the round is refused
 * or aborted.
 */
export async function oneShotCommand(args: string[], io: Io): Promise<number> {
  const flags = parseFlags(args, {
    ...CREDENTIAL_FLAGS,
    config: { type: "string" },
    name: { type: "string" },
    hospital: { type: "string" },
    "hospital-name": { type: "string" },
    variable: { type: "string" },
    timeout: { type: "string" },
    "join-timeout": { type: "string" },
    json: { type: "boolean" },
  });
  const options = await agentOptions(flags);
  const variable = oneShotVariable(options.config, flags);
  const timeoutMs = timeoutFlag(flags, DEFAULT_TIMEOUT_SECONDS);
  const joinTimeoutMs = joinTimeoutFlag(flags, timeoutMs);
  const identity = await loadIdentity(options.name, options.credentials, {
    use: "peer",
    warn: (line) => io.err(stamped(line)),
  });
  const state = await AgentState.open(options.config.statePath);
  const { entry, bytesIn, bytesOut } = await runOneRound({
    config: { ...options.config, hospitalName: options.hospitalName },
    identity,
    state,
    hospital: options.hospital,
    variable,
    joinTimeoutMs,
    // Bounds each phase of a round whose terms announce no deadlines.
    defaultPhaseMs: timeoutMs,
    log: io.err,
  });
  if (entry.outcome !== "done") {
    // This site's own operator reads the rule; the hospital heard only "refused by policy".
    throw new RoundAbortedError(
      entry.outcome === "refused" ? `refused by policy: ${entry.reason}` : String(entry.reason),
    );
  }
  if (flags.values["json"]) {
    io.out(JSON.stringify({
      status: "done",
      name: options.name,
      variable: variable.name,
      session: entry.session,
      contributors: entry.contributors,
      resultDigest: entry.resultDigest,
      bytesSent: bytesOut,
      bytesReceived: bytesIn,
      audit: options.config.auditPath,
    }));
  } else {
    io.out(`round ${entry.session} done`);
  }
  return 0;
}
