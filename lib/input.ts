/**
 * Reading a peer's data: `--value` (one number, or a comma-separated vector),
 * or `--input FILE` as a JSON array, a CSV file with `--column NAME`, or one
 * number per line. Numbers are parsed once, exactly, at the peer's scale into
 * a `Float64Array` of scaled integers (never held as strings, so a file of a
 * million numbers costs about one vector of memory); the query decides later
 * what they must be, and every refusal names the line.
 *
 * @module
 */

import { DecimalError, parseScaled } from "./decimal.ts";
import { InputError } from "./query.ts";

/** A peer's numbers, scaled, and where each came from. */
export interface PeerData {
  /** value × 10^scale, exact integers of magnitude below 2^53. */
  values: Float64Array;
  /** "line 12", "item 3", "--value": for messages about entry `index`. */
  where(index: number): string;
}

const LIMIT = 2 ** 53;

/** Parses one number's text at `scale`; refuses non-numbers and values too large to be exact. */
function scaledNumber(text: string, scale: number, where: string): number {
  let value: bigint;
  try {
    value = parseScaled(text, scale);
  } catch (cause) {
    throw new InputError(
      `${where}: ${cause instanceof DecimalError ? cause.message : "not a number"}`,
    );
  }
  if (value <= -BigInt(LIMIT) || value >= BigInt(LIMIT)) {
    throw new InputError(`${where}: too large`);
  }
  return Number(value);
}

/** `--value`: one number, or several separated by commas. */
export function dataFromValue(text: string, scale: number): PeerData {
  const parts = text.split(",");
  const label = (i: number) => parts.length === 1 ? "--value" : `--value item ${i + 1}`;
  return {
    values: Float64Array.from(parts, (part, i) => scaledNumber(part.trim(), scale, label(i))),
    where: label,
  };
}

const NEWLINE = 0x0a;
const CARRIAGE_RETURN = 0x0d;

/**
 * One number per line, scanned from bytes: whole numbers take a fast path,
 * anything else goes through the exact decimal parser. Blank lines are
 * skipped.
 */
function dataFromLines(bytes: Uint8Array, scale: number): PeerData {
  let count = 0;
  for (let i = 0; i < bytes.length; i++) if (bytes[i] === NEWLINE) count++;
  const values = new Float64Array(count + 1);
  const lines = new Uint32Array(count + 1);
  const factor = 10 ** scale;
  const decoder = new TextDecoder();
  let n = 0;
  let line = 0;
  let start = 0;
  for (let i = 0; i <= bytes.length; i++) {
    if (i < bytes.length && bytes[i] !== NEWLINE) continue;
    line++;
    let end = i;
    if (end > start && bytes[end - 1] === CARRIAGE_RETURN) end--;
    // Fast path: plain digits.
    let value = 0;
    let plain = end > start;
    for (let j = start; j < end; j++) {
      const d = bytes[j]! - 48;
      if (d < 0 || d > 9) {
        plain = false;
        break;
      }
      value = value * 10 + d;
    }
    if (plain && value * factor < LIMIT) {
      values[n] = value * factor;
      lines[n++] = line;
    } else {
      const text = decoder.decode(bytes.subarray(start, end)).trim();
      if (text !== "") {
        // A comma on a line that is not a number: most likely a CSV file.
        const where = text.includes(",")
          ? `line ${line} (for a CSV file, name the column with --column)`
          : `line ${line}`;
        values[n] = scaledNumber(text, scale, where);
        lines[n++] = line;
      }
    }
    start = i + 1;
  }
  return { values: values.slice(0, n), where: (index) => `line ${lines[index]}` };
}

function dataFromJson(text: string, scale: number): PeerData {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (cause) {
    // Not the parser's message: it quotes the file, and the file is private.
    throw new InputError("not valid JSON", { cause });
  }
  if (!Array.isArray(data)) throw new InputError("a JSON input must be an array of numbers");
  const factor = 10 ** scale;
  const values = new Float64Array(data.length);
  data.forEach((item, i) => {
    if (typeof item === "number" && Number.isSafeInteger(item) && Math.abs(item * factor) < LIMIT) {
      values[i] = item * factor;
    } else if (typeof item === "number" || typeof item === "string") {
      // String(number) is the shortest text that reads back as the same double.
      values[i] = scaledNumber(String(item), scale, `item ${i + 1}`);
    } else {
      throw new InputError(`item ${i + 1}: not a number`);
    }
  });
  return { values, where: (index) => `item ${index + 1}` };
}

/** Splits one CSV line into fields (RFC 4180 quotes; no embedded newlines). */
export function splitCsvLine(line: string, where: string): string[] {
  const fields: string[] = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c === '"' && field === "") {
      quoted = true;
    } else if (c === ",") {
      fields.push(field);
      field = "";
    } else {
      field += c;
    }
  }
  if (quoted) throw new InputError(`${where}: unterminated quote`);
  fields.push(field);
  return fields;
}

function dataFromCsv(text: string, column: string, scale: number): PeerData {
  const lines = text.split(/\r?\n/);
  const header = splitCsvLine(lines[0] ?? "", "line 1").map((h) => h.trim());
  const index = header.indexOf(column);
  if (index < 0) {
    throw new InputError(
      `line 1: no column named ${JSON.stringify(column)} (columns: ${header.join(", ")})`,
    );
  }
  const values: number[] = [];
  const where: number[] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === "") continue;
    const fields = splitCsvLine(line, `line ${i + 1}`);
    if (fields.length !== header.length) {
      throw new InputError(
        `line ${i + 1}: ${fields.length} fields, the header has ${header.length}`,
      );
    }
    values.push(scaledNumber(fields[index]!.trim(), scale, `line ${i + 1}`));
    where.push(i + 1);
  }
  return { values: Float64Array.from(values), where: (k) => `line ${where[k]}` };
}

/** Parses a file's bytes as the format it is in. */
export function dataFromBytes(
  bytes: Uint8Array,
  options: { scale: number; column?: string | undefined },
): PeerData {
  let offset = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0; // BOM
  const body = bytes.subarray(offset);
  if (options.column !== undefined) {
    return dataFromCsv(new TextDecoder().decode(body), options.column, options.scale);
  }
  while (offset < bytes.length && /\s/.test(String.fromCharCode(bytes[offset]!))) offset++;
  if (bytes[offset] === 0x5b) return dataFromJson(new TextDecoder().decode(body), options.scale); // "["
  return dataFromLines(body, options.scale);
}

/** Reads and parses `--input FILE`. */
export async function readInputFile(
  path: string,
  options: { scale: number; column?: string | undefined },
): Promise<PeerData> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (cause) {
    throw new InputError(`cannot read ${path}`, { cause });
  }
  return dataFromBytes(bytes, options);
}
