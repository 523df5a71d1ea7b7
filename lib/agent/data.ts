/**
 * Reading a variable's data afresh for one round, at the round's scale, and
 * its data version: a SHA-256 of exactly the numbers used. CSV cells that
 * are empty or `NA` are missing: skipped or refusing the round, as the
 * variable says. Every error names where (file, line, column), never what.
 *
 * @module
 */

import { DecimalError, parseScaled } from "../decimal.ts";
import { FileError } from "../errors.ts";
import { readInputFile, splitCsvLine } from "../input.ts";
import { InputError } from "../query.ts";
import { toHex } from "../encoding.ts";
import type { Variable } from "./config.ts";

/** A variable's numbers for one round. */
export interface VariableData {
  /** value × 10^scale, exact. */
  values: Float64Array;
  where(index: number): string;
  /** Hex SHA-256 over the scale and the numbers used: the data version. */
  version: string;
  /** Cells skipped as missing. */
  skipped: number;
}

const MISSING = new Set(["", "NA", "N/A", "NaN", "na", "null", "NULL"]);
const LIMIT = 2 ** 53;

/** Reads `variable` at `scale` (at least the variable's own, so every number stays exact). */
export async function readVariable(variable: Variable, scale: number): Promise<VariableData> {
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
  return { values, where, version: await versionOf(values, scale), skipped };
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

/** The data version: SHA-256 over the scale and the numbers, as little-endian binary64. */
async function versionOf(values: Float64Array, scale: number): Promise<string> {
  const bytes = new Uint8Array(8 + values.length * 8);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, scale, true);
  view.setUint32(4, values.length, true);
  values.forEach((v, i) => view.setFloat64(8 + 8 * i, v, true));
  return toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)));
}
