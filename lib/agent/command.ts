/**
 * `sumshare peer --serve --config FILE`: a data owner's standing agent. The
 * config file and the flags merge into one typed options object in one
 * pass ({@linkcode agentOptions}), flags winning.
 *
 * @module
 */

import { UsageError } from "../errors.ts";
import { loadIdentity } from "../identity.ts";
import type { HostPort } from "../names.ts";
import {
  addressFlag,
  CREDENTIAL_FLAGS,
  credentialPaths,
  nameFlag,
  type ParsedFlags,
  parseFlags,
  stringFlag,
} from "../options.ts";
import { runAgent } from "./agent.ts";
import { type AgentConfig, ConfigError, loadAgentConfig } from "./config.ts";
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

Options (each overrides the config's key of the same meaning):
  --config FILE        the agent's config (required)
  --name NAME          name
  --hospital HOST:PORT hospital
  --hospital-name NAME hospital_name
  --certs DIR | --ca FILE --cert FILE --key FILE
                       certs / ca, cert, key
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
  const { ca, cert, key, certs } = flags.values;
  const credentials = [ca, cert, key, certs].some((v) => v !== undefined)
    ? credentialPaths(flags, name)
    : config.credentials;
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
  const identity = await loadIdentity(options.name, options.credentials, { use: "peer" });
  const state = await AgentState.open(options.config.statePath);
  const log = (line: string) => io.err(`${new Date().toISOString()} ${line}`);
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
