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
import { releaseGarbage } from "./garbage.ts";
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
 * skipped. Bytes arrive in chunks, so a large file is parsed without ever
 * being held whole: the numbers are the only thing kept.
 */
class LineScanner {
  readonly #values: Float64Array;
  /**
   * Entry k is on line k + 1 until a blank line is skipped; only then are
   * line numbers worth recording (4 bytes an entry).
   */
  #lines: Uint32Array | undefined;
  readonly #scale: number;
  readonly #factor: number;
  readonly #decoder = new TextDecoder();
  #count = 0;
  #line = 0;
  /** The start of a line that a chunk ended inside. */
  #partial: Uint8Array[] = [];

  /** `capacity`: the file's newlines plus one, the most lines it can hold. */
  constructor(capacity: number, scale: number) {
    this.#values = new Float64Array(capacity);
    this.#scale = scale;
    this.#factor = 10 ** scale;
  }

  /** Parses every line that `chunk` completes. */
  push(chunk: Uint8Array): void {
    let start = 0;
    for (let i = chunk.indexOf(NEWLINE); i >= 0; i = chunk.indexOf(NEWLINE, start)) {
      if (this.#partial.length === 0) {
        this.#parseLine(chunk, start, i);
      } else {
        const whole = concat([...this.#partial, chunk.subarray(0, i)]);
        this.#partial = [];
        this.#parseLine(whole, 0, whole.length);
      }
      start = i + 1;
    }
    // Copied: the caller may reuse its buffer for the next chunk.
    if (start < chunk.length) this.#partial.push(chunk.slice(start));
  }

  /** Parses the last line (which has no newline) and returns the numbers. */
  finish(): PeerData {
    const last = concat(this.#partial);
    this.#partial = [];
    this.#parseLine(last, 0, last.length);
    const lines = this.#lines;
    // A view, not a copy: the spare slot for a last line without a newline costs 8 bytes.
    return {
      values: this.#values.subarray(0, this.#count),
      where: (index) => `line ${lines ? lines[index] : index + 1}`,
    };
  }

  #parseLine(bytes: Uint8Array, start: number, end: number): void {
    this.#line++;
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
    if (plain && value * this.#factor < LIMIT) {
      this.#store(value * this.#factor);
      return;
    }
    const text = this.#decoder.decode(bytes.subarray(start, end)).trim();
    if (text === "") return;
    // A comma on a line that is not a number: most likely a CSV file.
    const where = text.includes(",")
      ? `line ${this.#line} (for a CSV file, name the column with --column)`
      : `line ${this.#line}`;
    this.#store(scaledNumber(text, this.#scale, where));
  }

  #store(value: number): void {
    const n = this.#count;
    if (n >= this.#values.length) throw new InputError("the file changed while it was read");
    if (this.#lines === undefined && this.#line !== n + 1) {
      this.#lines = new Uint32Array(this.#values.length);
      for (let k = 0; k < n; k++) this.#lines[k] = k + 1;
    }
    if (this.#lines !== undefined) this.#lines[n] = this.#line;
    this.#values[n] = value;
    this.#count = n + 1;
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  const whole = new Uint8Array(parts.reduce((total, part) => total + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    whole.set(part, offset);
    offset += part.length;
  }
  return whole;
}

function countNewlines(bytes: Uint8Array): number {
  let count = 0;
  for (let i = bytes.indexOf(NEWLINE); i >= 0; i = bytes.indexOf(NEWLINE, i + 1)) count++;
  return count;
}

function dataFromLines(bytes: Uint8Array, scale: number): PeerData {
  const scanner = new LineScanner(countNewlines(bytes) + 1, scale);
  scanner.push(bytes);
  return scanner.finish();
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

const BOM = [0xef, 0xbb, 0xbf];

function startsWithBom(bytes: Uint8Array): boolean {
  return BOM.every((b, i) => bytes[i] === b);
}

function isSpace(byte: number): boolean {
  return byte === 0x20 || (byte >= 0x09 && byte <= 0x0d);
}

/** Parses a file's bytes as the format it is in. */
export function dataFromBytes(
  bytes: Uint8Array,
  options: { scale: number; column?: string | undefined },
): PeerData {
  const body = bytes.subarray(startsWithBom(bytes) ? BOM.length : 0);
  if (options.column !== undefined) {
    return dataFromCsv(new TextDecoder().decode(body), options.column, options.scale);
  }
  if (body.find((byte) => !isSpace(byte)) === OPEN_BRACKET) {
    return dataFromJson(new TextDecoder().decode(body), options.scale);
  }
  return dataFromLines(body, options.scale);
}

const OPEN_BRACKET = 0x5b;
/** Bytes read at a time when a file is streamed. */
const READ_BYTES = 64 * 1024;

/**
 * Feeds a file to `consume` a chunk at a time, until the end or until
 * `consume` returns `false`; the buffer is reused between calls.
 */
async function eachChunk(
  path: string,
  consume: (chunk: Uint8Array) => boolean | void,
): Promise<void> {
  using file = await Deno.open(path);
  const buffer = new Uint8Array(READ_BYTES);
  for (let n = await file.read(buffer); n !== null; n = await file.read(buffer)) {
    if (consume(buffer.subarray(0, n)) === false) return;
  }
}

async function wholeFile(
  path: string,
  options: { scale: number; column?: string | undefined },
): Promise<PeerData> {
  const bytes = await Deno.readFile(path);
  const data = dataFromBytes(bytes, options);
  releaseGarbage(bytes.length); // the file's bytes: only the parsed numbers stay
  return data;
}

/**
 * Reads and parses `--input FILE`. One number per line, the format a large
 * vector comes in, is streamed twice (count the lines, then parse into a
 * vector of exactly that size), so a million numbers cost one vector of
 * memory and not the file's text as well. JSON and CSV are read whole.
 */
export async function readInputFile(
  path: string,
  options: { scale: number; column?: string | undefined },
): Promise<PeerData> {
  try {
    // CSV is parsed as text, and pipes and devices can be read only once: read them whole.
    if (options.column !== undefined || !(await Deno.stat(path)).isFile) {
      return await wholeFile(path, options);
    }
    let newlines = 0;
    let bom: boolean | undefined;
    let firstByte: number | undefined; // the first that is not a space
    await eachChunk(path, (chunk) => {
      newlines += countNewlines(chunk);
      const first = bom === undefined;
      bom ??= startsWithBom(chunk);
      firstByte ??= chunk.subarray(first && bom ? BOM.length : 0).find((b) => !isSpace(b));
      return firstByte !== OPEN_BRACKET; // JSON: no need to count further
    });
    if (firstByte === OPEN_BRACKET) {
      return await wholeFile(path, options);
    }
    const scanner = new LineScanner(newlines + 1, options.scale);
    let skip = bom ? BOM.length : 0;
    await eachChunk(path, (chunk) => {
      const body = chunk.subarray(Math.min(skip, chunk.length));
      skip -= chunk.length - body.length;
      scanner.push(body);
    });
    return scanner.finish();
  } catch (cause) {
    if (cause instanceof InputError) throw cause;
    throw new InputError(`cannot read ${path}`, { cause });
  }
}
