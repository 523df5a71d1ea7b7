/**
 * Reading a variable's data afresh for one round, always at the variable's
 * own declared scale, checked against its declared range (0 to `max`, at
 * most `max_rows` rows, `dimension` numbers for a vector variable), and its
 * data version: a SHA-256 of the numbers alone. CSV cells that are empty or
 * `NA` are missing: skipped or refusing the round, as the variable says.
 * Every error names where (file, line, column), never what.
 *
 * Nothing here depends on the round: a round's terms are checked against
 * the declaration before the data is read (lib/agent/policy.ts), so whether
 * the data can be used is the same for every round — a hospital cannot learn
 * anything about the values from which rounds an agent joins.
 *
 * @module
 */

import { DecimalError, MAX_SCALE, parseScaled } from "../decimal.ts";
import { FileError } from "../errors.ts";
import { readInputFile, splitCsvLine } from "../input.ts";
import { InputError } from "../query.ts";
import { toHex } from "../encoding.ts";
import type { Variable } from "./config.ts";

/** A variable's numbers, at its declared scale. */
export interface VariableData {
  /** value × 10^variable.scale, exact, in row order. */
  values: Float64Array;
  where(index: number): string;
  /**
   * Hex SHA-256 over the numbers, at the variable's own scale, sorted unless
   * the variable is a vector: the data version. The round's scale and the
   * rows' order do not change it, so the answered-set rule cannot be reset
   * by asking at another scale or by re-sorting a file.
   */
  version: string;
  /** Cells skipped as missing. */
  skipped: number;
}

const MISSING = new Set(["", "NA", "N/A", "NaN", "na", "null", "NULL"]);
const LIMIT = 2 ** 53;

/**
 * Reads `variable` at its own scale and checks it against its declaration:
 * every number in [0, max], at most `maxRows` rows (a vector variable:
 * exactly `dimension` numbers). A failure is this site's own configuration
 * or data error, the same for every round until it is fixed.
 */
export async function readVariable(variable: Variable): Promise<VariableData> {
  const scale = variable.scale;
  let values: Float64Array;
  let where: (index: number) => string;
  let skipped = 0;
  if (variable.column === undefined) {
    const data = await readInputFile(variable.file, { scale });
    values = data.values;
    where = (i) => `${variable.file} ${data.where(i)}`;
  } else {
    let text: string;
    try {
      text = await Deno.readTextFile(variable.file);
    } catch (cause) {
      throw new FileError(`Cannot read ${variable.file}: ${(cause as Error).message}`, { cause });
    }
    const parsed = csvColumn(text, variable, scale);
    values = parsed.values;
    where = parsed.where;
    skipped = parsed.skipped;
  }
  checkDeclared(variable, values, where);
  return { values, where, version: await versionOf(variable, values), skipped };
}

/** Refuses data outside the variable's declaration, naming where, never what. */
function checkDeclared(
  variable: Variable,
  values: Float64Array,
  where: (index: number) => string,
): void {
  const { name } = variable;
  if (variable.dimension > 0) {
    if (values.length !== variable.dimension) {
      throw new InputError(
        `${variable.file}: ${values.length} numbers, but ${name} declares dimension = ${variable.dimension}`,
      );
    }
  } else if (values.length > variable.maxRows) {
    throw new InputError(
      `${variable.file}: ${values.length} rows, more than ${name}'s declared max_rows = ${variable.maxRows}`,
    );
  }
  const max = Number(variable.max); // exact: max < p < 2^52
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!(v >= 0 && v <= max)) {
      throw new InputError(`${where(i)}: outside ${name}'s declared range (0 to its max)`);
    }
  }
}

/**
 * `values` (at `from` decimal places) at `to` ≥ `from` places, exactly:
 * a result at or above 2^53 throws a RangeError rather than round. The
 * caller keeps every result below that (policy.ts: the round's R covers the
 * declared max at the round's scale, and R < p < 2^52; a histogram's
 * declared max at the round's scale is below 2^53).
 */
export function atScale(values: Float64Array, from: number, to: number): Float64Array {
  if (to === from) return values;
  const factor = 10 ** (to - from); // exact: to − from ≤ 15
  return values.map((v) => {
    const scaled = v * factor;
    // Never a rounded value, even if a caller forgets the bound (the message names no value).
    if (!Number.isSafeInteger(scaled)) {
      throw new RangeError(`Cannot rescale: a value at scale ${to} is not exact below 2^53`);
    }
    return scaled;
  });
}

function csvColumn(text: string, variable: Variable, scale: number) {
  const column = variable.column!;
  const file = variable.file;
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  const header = splitCsvLine(lines[0] ?? "", `${file} line 1`).map((h) => h.trim());
  const index = header.indexOf(column);
  if (index < 0) throw new InputError(`${file} line 1: no column named ${JSON.stringify(column)}`);
  if (header.indexOf(column, index + 1) >= 0) {
    throw new InputError(`${file} line 1: more than one column is named ${JSON.stringify(column)}`);
  }
  const place = (line: number) => `${file} line ${line}, column ${JSON.stringify(column)}`;
  const values: number[] = [];
  const rows: number[] = [];
  let skipped = 0;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === "") continue;
    const fields = splitCsvLine(line, `${file} line ${i + 1}`);
    if (fields.length !== header.length) {
      throw new InputError(
        `${file} line ${i + 1}: ${fields.length} fields, the header has ${header.length}`,
      );
    }
    const cell = fields[index]!.trim();
    if (MISSING.has(cell)) {
      if (variable.missing === "refuse") {
        throw new InputError(
          `${place(i + 1)}: missing value (the variable says missing = "refuse")`,
        );
      }
      skipped++;
      continue;
    }
    let value: bigint;
    try {
      value = parseScaled(cell, scale);
    } catch (cause) {
      throw new InputError(
        `${place(i + 1)}: ${cause instanceof DecimalError ? cause.message : "not a number"}`,
      );
    }
    if (value <= -BigInt(LIMIT) || value >= BigInt(LIMIT)) {
      throw new InputError(`${place(i + 1)}: too large`);
    }
    values.push(Number(value));
    rows.push(i + 1);
  }
  return { values: Float64Array.from(values), where: (k: number) => place(rows[k]!), skipped };
}

const VERSION_TAG = new TextEncoder().encode("sumshare data version 2\0");

/**
 * The data version: SHA-256 over a tag, the variable's scale, whether the
 * order counts, the count, and the numbers as little-endian binary64 — in
 * row order for a vector variable (the order is the data), sorted for every
 * other (sum, count, mean, variance and histogram do not depend on it). One
 * function of the data for every query kind, so that a sum and a vector of
 * the same data are one version.
 */
async function versionOf(variable: Variable, values: Float64Array): Promise<string> {
  const ordered = variable.dimension > 0;
  const numbers = ordered ? values : Float64Array.from(values).sort();
  const head = VERSION_TAG.length;
  const bytes = new Uint8Array(head + 12 + numbers.length * 8);
  bytes.set(VERSION_TAG);
  const view = new DataView(bytes.buffer);
  view.setUint32(head, variable.scale, true);
  view.setUint32(head + 4, ordered ? 1 : 0, true);
  view.setUint32(head + 8, numbers.length, true);
  numbers.forEach((v, i) => view.setFloat64(head + 12 + 8 * i, v, true));
  return toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)));
}

/**
 * The versions sumshare-agent-state/1 would have recorded for these numbers
 * (`values` at `scale`, in row order): one per round scale from `scale` to
 * MAX_SCALE at which they stay exact. That scheme hashed the round's scale
 * and the numbers at it, so a state file from it is matched against each.
 */
export async function legacyVersions(values: Float64Array, scale: number): Promise<string[]> {
  const versions: string[] = [];
  for (let s = scale; s <= MAX_SCALE; s++) {
    let scaled: Float64Array;
    try {
      scaled = atScale(values, scale, s);
    } catch (error) {
      if (error instanceof RangeError) break; // not exact at s, nor at any finer scale
      throw error;
    }
    const bytes = new Uint8Array(8 + scaled.length * 8);
    const view = new DataView(bytes.buffer);
    view.setUint32(0, s, true);
    view.setUint32(4, scaled.length, true);
    scaled.forEach((v, i) => view.setFloat64(8 + 8 * i, v, true));
    versions.push(toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes))));
  }
  return versions;
}
