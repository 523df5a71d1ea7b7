/**
 * Parsing and checking command-line option values. Every problem is a
 * {@linkcode UsageError} (exit code 2) whose message names the option but
 * never echoes a private value.
 *
 * @module
 */

import { parseArgs, type ParseArgsConfig } from "node:util";
import { join } from "node:path";
import { UsageError } from "./errors.ts";
import { parseScaled } from "./decimal.ts";
import { P_BIG } from "./field.ts";
import type { CredentialPaths } from "./identity.ts";
import { checkPartyName, type HostPort, parseHostPort } from "./names.ts";

type Options = NonNullable<ParseArgsConfig["options"]>;

/** Parsed flags: strings and booleans by name, and positionals. */
export interface ParsedFlags {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

/** Strict parsing: unknown flags, missing values and repeats are usage errors. */
export function parseFlags(
  args: string[],
  options: Options,
  { positionals = 0 } = {},
): ParsedFlags {
  // A stray "-42" would read as short options and be echoed back ("-4"): refuse it first.
  if (args.some((a, i) => /^-[0-9.]/.test(a) && !isValue(args, i, options))) {
    throw new UsageError("Unexpected positional argument: every value goes with its --option");
  }
  checkOptionNames(args, options);
  let parsed;
  try {
    parsed = parseArgs({
      args: joinNegativeNumbers(args, options),
      options,
      strict: true,
      // Counted below: node's own message would echo the argument.
      allowPositionals: true,
      tokens: true,
    });
  } catch (cause) {
    throw new UsageError(cause instanceof Error ? cause.message : String(cause), { cause });
  }
  const seen = new Set<string>();
  for (const token of parsed.tokens ?? []) {
    if (token.kind !== "option") continue;
    if (seen.has(token.name)) {
      throw new UsageError(`Option --${token.name} is given more than once`);
    }
    seen.add(token.name);
  }
  if (parsed.positionals.length > positionals) {
    // Not echoed: a stray argument is often a value typed without its flag.
    throw new UsageError("Unexpected positional argument: every value goes with its --option");
  }
  return { values: parsed.values as ParsedFlags["values"], positionals: parsed.positionals };
}

/**
 * Refuses an unknown option by its name alone, suggesting the closest known
 * one. node's own message quotes the argument in a hint whose quote is never
 * closed, and would echo a value given as `--valeu=123`.
 */
function checkOptionNames(args: string[], options: Options): void {
  const { tokens } = parseArgs({
    args: joinNegativeNumbers(args, options),
    options,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  for (const token of tokens) {
    if (token.kind !== "option") continue;
    const known = token.rawName.startsWith("--")
      ? Object.hasOwn(options, token.name)
      : Object.values(options).some((o) => o.short === token.name);
    if (known) continue;
    const suggestion = closestOption(token.name, Object.keys(options));
    throw new UsageError(
      `Unknown option ${token.rawName.startsWith("--") ? "--" : "-"}${token.name}${
        suggestion === undefined ? "" : ` (did you mean --${suggestion}?)`
      }`,
    );
  }
}

/**
 * The known option nearest to `name`, if it is near enough to be a typo:
 * one edit for short names, two for longer ones. Swapped neighbours count as
 * one edit ("valeu" is one from "value"), which plain Levenshtein distance,
 * as in the usual npm packages, would count as two.
 */
function closestOption(name: string, known: string[]): string | undefined {
  const limit = name.length <= 4 ? 1 : 2;
  let best: string | undefined;
  let bestDistance = limit + 1;
  for (const candidate of known) {
    const distance = editDistance(name, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

/** Optimal string alignment distance: insertions, deletions, substitutions and swaps. */
function editDistance(a: string, b: string): number {
  const rows = Array.from({ length: a.length + 1 }, (_, i) => {
    const row = new Array<number>(b.length + 1).fill(0);
    row[0] = i;
    return row;
  });
  for (let j = 0; j <= b.length; j++) rows[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const row = rows[i]!;
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row[j] = Math.min(rows[i - 1]![j]! + 1, row[j - 1]! + 1, rows[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        row[j] = Math.min(row[j]!, rows[i - 2]![j - 2]! + 1);
      }
    }
  }
  return rows[a.length]![b.length]!;
}

/** Whether `args[i]` is the value of the string option just before it. */
function isValue(args: string[], i: number, options: Options): boolean {
  const before = args[i - 1];
  return before !== undefined && before.startsWith("--") && !before.includes("=") &&
    options[before.slice(2)]?.type === "string";
}

/**
 * `--value -5` would otherwise read as an ambiguous short flag; joining it to
 * `--value=-5` lets the option's own check refuse it with a clear message.
 */
function joinNegativeNumbers(args: string[], options: Options): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const next = args[i + 1];
    const name = arg.startsWith("--") ? arg.slice(2) : "";
    if (options[name]?.type === "string" && next !== undefined && /^-[0-9.]/.test(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else {
      out.push(arg);
    }
  }
  return out;
}

/** The string value of `--name`, or `fallback`; a usage error if required and missing. */
export function stringFlag(flags: ParsedFlags, name: string, fallback?: string): string {
  const value = flags.values[name];
  if (typeof value === "string") return value;
  if (fallback !== undefined) return fallback;
  throw new UsageError(`Missing required option --${name}`);
}

/** A whole number in [min, max]. */
export function integerFlag(
  flags: ParsedFlags,
  name: string,
  range: { min: number; max: number; fallback?: number },
): number {
  const text = flags.values[name];
  if (text === undefined && range.fallback !== undefined) return range.fallback;
  if (typeof text !== "string") throw new UsageError(`Missing required option --${name}`);
  if (!/^[0-9]+$/.test(text) || Number(text) < range.min || Number(text) > range.max) {
    throw new UsageError(
      `Invalid --${name}: expected a whole number from ${range.min} to ${range.max}`,
    );
  }
  return Number(text);
}

/** A timeout in seconds (decimals allowed), returned in milliseconds. */
export function timeoutFlag(flags: ParsedFlags, fallbackSeconds: number, name = "timeout"): number {
  const text = flags.values[name];
  if (text === undefined) return fallbackSeconds * 1000;
  const seconds = typeof text === "string" && /^[0-9]+(\.[0-9]+)?$/.test(text) ? Number(text) : NaN;
  if (!(seconds >= 0.1 && seconds <= 86_400)) {
    throw new UsageError(`Invalid --${name}: expected seconds from 0.1 to 86400`);
  }
  return Math.round(seconds * 1000);
}

/** The generous default join window, when neither --join-timeout nor --timeout is given. */
export const DEFAULT_JOIN_TIMEOUT_SECONDS = 600;

/**
 * The join window: --join-timeout; without it --timeout as before (so a
 * command line that bounded everything with --timeout still does), and
 * otherwise {@linkcode DEFAULT_JOIN_TIMEOUT_SECONDS}, so sites need not all
 * start within one phase's deadline.
 */
export function joinTimeoutFlag(flags: ParsedFlags, phaseMs: number): number {
  if (flags.values["join-timeout"] !== undefined) {
    return timeoutFlag(flags, DEFAULT_JOIN_TIMEOUT_SECONDS, "join-timeout");
  }
  return flags.values["timeout"] !== undefined ? phaseMs : DEFAULT_JOIN_TIMEOUT_SECONDS * 1000;
}

/**
 * A non-negative decimal with at most `scale` decimal places, returned
 * scaled (× 10^scale) and below p. Used for `--max`; the text is not repeated
 * in errors.
 */
export function scaledFlag(
  flags: ParsedFlags,
  name: string,
  scale: number,
  fallback?: bigint,
): bigint {
  const text = flags.values[name];
  if (text === undefined && fallback !== undefined) return fallback;
  if (typeof text !== "string") throw new UsageError(`Missing required option --${name}`);
  let value: bigint;
  try {
    value = parseScaled(text, scale);
  } catch (cause) {
    throw new UsageError(`Invalid --${name}: ${(cause as Error).message}`, { cause });
  }
  if (value < 0n) throw new UsageError(`Invalid --${name}: must not be negative`);
  if (value >= P_BIG) {
    throw new UsageError(`Invalid --${name}: scaled, it must be below p = ${P_BIG}`);
  }
  return value;
}

/** A `HOST:PORT` flag. */
export function addressFlag(
  flags: ParsedFlags,
  name: string,
  { allowZero = false, fallback = "" } = {},
): HostPort {
  const text = stringFlag(flags, name, fallback || undefined);
  try {
    return parseHostPort(text, { allowZero });
  } catch (cause) {
    throw new UsageError(`Invalid --${name}: ${(cause as Error).message}`, { cause });
  }
}

/** A party name flag. */
export function nameFlag(flags: ParsedFlags, name: string, fallback?: string): string {
  const text = stringFlag(flags, name, fallback);
  try {
    return checkPartyName(text);
  } catch (cause) {
    throw new UsageError(`Invalid --${name}: ${(cause as Error).message}`, { cause });
  }
}

/** The flags that locate a party's credentials. */
export const CREDENTIAL_FLAGS = {
  certs: { type: "string" },
  ca: { type: "string" },
  cert: { type: "string" },
  key: { type: "string" },
  revoked: { type: "string" },
} as const satisfies Options;

/**
 * `--certs DIR` (meaning DIR/ca.crt, DIR/NAME.crt, DIR/NAME.key), or all of
 * `--ca`, `--cert` and `--key`; `--certs certs` by default. `--revoked FILE`
 * names the CA's deny-list (default: revoked.json next to the CA, if there).
 */
export function credentialPaths(flags: ParsedFlags, name: string): CredentialPaths {
  const { ca, cert, key, certs, revoked } = flags.values;
  // The deny-list: --revoked FILE, else revoked.json next to the CA certificate when present.
  const list = typeof revoked === "string" ? { revoked } : {};
  const explicit = [ca, cert, key].filter((v) => v !== undefined).length;
  if (explicit > 0) {
    if (certs !== undefined) {
      throw new UsageError("Use either --certs or --ca/--cert/--key, not both");
    }
    if (explicit !== 3) throw new UsageError("--ca, --cert and --key go together: give all three");
    return { ca: String(ca), cert: String(cert), key: String(key), ...list };
  }
  const dir = typeof certs === "string" ? certs : "certs";
  return {
    ca: join(dir, "ca.crt"),
    cert: join(dir, `${name}.crt`),
    key: join(dir, `${name}.key`),
    ...list,
  };
}

/** A comma-separated list; empty items are refused. */
export function listFlag(flags: ParsedFlags, name: string, fallback?: string): string[] {
  const items = stringFlag(flags, name, fallback).split(",").map((s) => s.trim());
  if (items.some((s) => s === "")) {
    throw new UsageError(`Invalid --${name}: empty item in the list`);
  }
  return items;
}
