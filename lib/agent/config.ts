/**
 * A peer agent's configuration file (TOML, read with smol-toml): who the
 * party is, where the hospital is, its credentials, its variables (file,
 * column, scale, declared range, what a missing cell means) and its policy.
 * Relative paths are relative to the config file. Every problem is a
 * {@linkcode ConfigError} naming the key, never a data value.
 *
 * @module
 */

import { dirname, isAbsolute, join, resolve } from "node:path";
import { parse, TomlError } from "smol-toml";
import { parseScaled } from "../decimal.ts";
import { MAX_SCALE } from "../decimal.ts";
import { P_BIG } from "../field.ts";
import type { CredentialPaths } from "../identity.ts";
import { checkPartyName, type HostPort, parseHostPort } from "../names.ts";
import { DEFAULT_MAX_ROWS, MAX_BINS } from "../query.ts";
import { MAX_DIMENSION, MAX_PARTICIPANTS } from "../wire/messages.ts";

/** Raised for a config file that cannot be used; the message names the file and key. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/** The query kinds a policy can allow. */
export const QUERY_KINDS = ["sum", "count", "mean", "variance", "histogram", "vector"] as const;
/** One query kind. */
export type QueryKind = (typeof QUERY_KINDS)[number];

/** What a variable's policy allows. */
export interface Policy {
  allow: readonly QueryKind[];
  /** The fewest contributors a sum over this data may have (this peer counted). */
  minContributors: number;
  maxHistogramBins: number;
  /** Rounds this agent joins in any 24 hours; undefined: no limit. */
  maxRoundsPerDay: number | undefined;
}

/** One variable: where its numbers are and how they are read. */
export interface Variable {
  name: string;
  file: string;
  /** The CSV column; absent: the file is a JSON array or one number per line. */
  column: string | undefined;
  scale: number;
  /** The declared largest value, scaled by `scale`. */
  max: bigint;
  maxRows: number;
  /** For `vector` queries: the vector's length (0: not a vector variable). */
  dimension: number;
  missing: "skip" | "refuse";
  policy: Policy;
}

/** A parsed agent config. */
export interface AgentConfig {
  /** The config file, absolute. */
  path: string;
  name: string;
  hospital: HostPort | undefined;
  hospitalName: string;
  credentials: CredentialPaths;
  variables: ReadonlyMap<string, Variable>;
  /** The agent's persistent state (answered sets, sessions seen): 0600 JSON. */
  statePath: string;
  /** The append-only audit log: 0600 JSON lines. */
  auditPath: string;
}

const VARIABLE_NAME = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;

type Table = Record<string, unknown>;

function isTable(value: unknown): value is Table {
  return typeof value === "object" && value !== null && !Array.isArray(value) &&
    !(value instanceof Date);
}

/** Reads and checks the config at `path`. */
export async function loadAgentConfig(path: string): Promise<AgentConfig> {
  const absolute = resolve(path);
  let text: string;
  try {
    text = await Deno.readTextFile(absolute);
  } catch (cause) {
    throw new ConfigError(`Cannot read config ${path}: ${(cause as Error).message}`, { cause });
  }
  return parseAgentConfig(text, absolute);
}

/** Parses config text; `path` (absolute) locates relative paths and names the file in errors. */
export function parseAgentConfig(text: string, path: string): AgentConfig {
  let doc: Table;
  try {
    doc = parse(text) as Table;
  } catch (cause) {
    const line = cause instanceof TomlError ? ` (line ${cause.line})` : "";
    throw new ConfigError(`Invalid config ${path}${line}: not valid TOML`, { cause });
  }
  const base = dirname(path);
  const at = (p: string) => isAbsolute(p) ? p : join(base, p);
  const keys = new Keys(path);
  keys.only(doc, "", [
    "name",
    "hospital",
    "hospital_name",
    "certs",
    "ca",
    "cert",
    "key",
    "revoked",
    "state",
    "audit",
    "data",
    "policy",
  ]);
  const name = keys.party(doc, "name");
  const hospitalText = keys.optionalString(doc, "hospital");
  let hospital: HostPort | undefined;
  if (hospitalText !== undefined) {
    try {
      hospital = parseHostPort(hospitalText);
    } catch (cause) {
      throw keys.error("hospital", (cause as Error).message);
    }
  }
  const hospitalName = doc["hospital_name"] === undefined
    ? "hospital"
    : keys.party(doc, "hospital_name");
  if (hospitalName === name) throw keys.error("name", "a peer cannot use the hospital's name");
  const credentials = credentialsOf(doc, keys, name, at);
  const revoked = keys.optionalString(doc, "revoked");
  if (revoked !== undefined) credentials.revoked = at(revoked);
  const policyTable = doc["policy"] === undefined ? {} : keys.table(doc, "policy");
  const defaults = policyOf(policyTable, keys, "policy", undefined);
  const dataTable = doc["data"] === undefined ? {} : keys.table(doc, "data");
  const variables = new Map<string, Variable>();
  for (const [varName, value] of Object.entries(dataTable)) {
    const where = `data.${varName}`;
    if (!VARIABLE_NAME.test(varName)) {
      throw keys.error(where, "a variable name is a letter, then letters, digits, '_' or '-'");
    }
    if (!isTable(value)) throw keys.error(where, "must be a table");
    variables.set(varName, variableOf(varName, value, keys, where, defaults, at));
  }
  if (variables.size === 0) throw keys.error("data", "define at least one [data.VAR] table");
  return {
    path,
    name,
    hospital,
    hospitalName,
    credentials,
    variables,
    statePath: at(keys.optionalString(doc, "state") ?? `${name}.state.json`),
    auditPath: at(keys.optionalString(doc, "audit") ?? `${name}.audit.log`),
  };
}

function credentialsOf(
  doc: Table,
  keys: Keys,
  name: string,
  at: (p: string) => string,
): CredentialPaths {
  const explicit = ["ca", "cert", "key"].filter((k) => doc[k] !== undefined);
  if (explicit.length > 0) {
    if (doc["certs"] !== undefined) throw keys.error("certs", "use either certs or ca/cert/key");
    if (explicit.length !== 3) throw keys.error("ca", "ca, cert and key go together");
    return {
      ca: at(keys.string(doc, "ca")),
      cert: at(keys.string(doc, "cert")),
      key: at(keys.string(doc, "key")),
    };
  }
  const dir = at(keys.optionalString(doc, "certs") ?? "certs");
  return { ca: join(dir, "ca.crt"), cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
}

function variableOf(
  name: string,
  table: Table,
  keys: Keys,
  where: string,
  defaults: Policy,
  at: (p: string) => string,
): Variable {
  keys.only(table, where, [
    "file",
    "column",
    "scale",
    "max",
    "max_rows",
    "dimension",
    "missing",
    "allow",
    "min_contributors",
    "max_histogram_bins",
    "max_rounds_per_day",
  ]);
  const scale = keys.integer(table, `${where}.scale`, "scale", 0, MAX_SCALE, 0);
  const maxText = table["max"];
  let max: bigint;
  if (maxText === undefined) throw keys.error(`${where}.max`, "is required (the declared range)");
  try {
    if (typeof maxText !== "number" && typeof maxText !== "string") throw new Error("a number");
    // A TOML float has already lost its spelling; its shortest form is what was written.
    max = parseScaled(String(maxText), scale);
  } catch (cause) {
    throw keys.error(
      `${where}.max`,
      `must be a number with at most ${scale} decimal places (${(cause as Error).message})`,
    );
  }
  if (max <= 0n || max >= P_BIG) throw keys.error(`${where}.max`, "must be above 0 and below p");
  const missing = table["missing"] ?? "refuse";
  if (missing !== "skip" && missing !== "refuse") {
    throw keys.error(`${where}.missing`, 'must be "skip" or "refuse"');
  }
  return {
    name,
    file: at(keys.string(table, "file", `${where}.file`)),
    column: keys.optionalString(table, "column"),
    scale,
    max,
    maxRows: keys.integer(table, `${where}.max_rows`, "max_rows", 1, 2 ** 31, DEFAULT_MAX_ROWS),
    dimension: keys.integer(table, `${where}.dimension`, "dimension", 0, MAX_DIMENSION, 0),
    missing,
    policy: policyOf(table, keys, where, defaults),
  };
}

/** The policy keys of `table` over `defaults` (a variable's own keys win over [policy]). */
function policyOf(table: Table, keys: Keys, where: string, defaults: Policy | undefined): Policy {
  if (defaults === undefined) {
    keys.only(table, where, [
      "allow",
      "min_contributors",
      "max_histogram_bins",
      "max_rounds_per_day",
    ]);
  }
  let allow = defaults?.allow ?? ["count", "sum", "mean", "variance", "histogram"];
  if (table["allow"] !== undefined) {
    const list = table["allow"];
    if (
      !Array.isArray(list) || list.some((k) => !(QUERY_KINDS as readonly unknown[]).includes(k))
    ) {
      throw keys.error(`${where}.allow`, `must be a list of ${QUERY_KINDS.join(", ")}`);
    }
    allow = [...new Set(list as QueryKind[])];
  }
  const d = defaults;
  return {
    allow,
    minContributors: keys.integer(
      table,
      `${where}.min_contributors`,
      "min_contributors",
      2,
      MAX_PARTICIPANTS,
      d?.minContributors ?? 2,
    ),
    maxHistogramBins: keys.integer(
      table,
      `${where}.max_histogram_bins`,
      "max_histogram_bins",
      1,
      MAX_BINS,
      d?.maxHistogramBins ?? 20,
    ),
    maxRoundsPerDay: table["max_rounds_per_day"] === undefined
      ? d?.maxRoundsPerDay
      : keys.integer(table, `${where}.max_rounds_per_day`, "max_rounds_per_day", 1, 1_000_000),
  };
}

/** Typed reads of TOML keys, each failure naming the file and the key. */
class Keys {
  #path: string;
  constructor(path: string) {
    this.#path = path;
  }

  error(key: string, what: string): ConfigError {
    return new ConfigError(`Invalid config ${this.#path}: ${key} ${what}`);
  }

  only(table: Table, where: string, known: string[]): void {
    for (const key of Object.keys(table)) {
      if (!known.includes(key)) {
        throw this.error(where === "" ? key : `${where}.${key}`, "is not a known key");
      }
    }
  }

  table(doc: Table, key: string): Table {
    const value = doc[key];
    if (!isTable(value)) throw this.error(key, "must be a table");
    return value;
  }

  string(table: Table, key: string, label = key): string {
    const value = table[key];
    if (typeof value !== "string" || value === "") throw this.error(label, "must be a string");
    return value;
  }

  optionalString(table: Table, key: string): string | undefined {
    return table[key] === undefined ? undefined : this.string(table, key);
  }

  party(table: Table, key: string): string {
    const text = this.string(table, key);
    try {
      return checkPartyName(text);
    } catch (cause) {
      throw this.error(key, (cause as Error).message);
    }
  }

  integer(
    table: Table,
    label: string,
    key: string,
    min: number,
    max: number,
    fallback?: number,
  ): number {
    const value = table[key];
    if (value === undefined && fallback !== undefined) return fallback;
    if (!Number.isSafeInteger(value) || (value as number) < min || (value as number) > max) {
      throw this.error(label, `must be a whole number from ${min} to ${max}`);
    }
    return value as number;
  }
}
