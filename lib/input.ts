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
import { FileError } from "./errors.ts";
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

/**
 * Whether `JSON.parse` may turn a number in `bytes` into a double that is not
 * the number it spells: one with an exponent (`1e-400` underflows to 0) or of
 * 16 digits and more (`1.0000000000000001` reads as 1). Every other JSON
 * number has at most 15 digits in all, so it lies between 10^-15 and 10^15,
 * where doubles keep 15 significant digits: the double it parses to prints
 * back (as `String(number)`, the shortest text that reads back as the same
 * double) as the same decimal value.
 * A false alarm (a letter e in a string) only costs the slower exact parse.
 * A byte loop: a regular expression over the decoded text takes several times
 * as long.
 */
function mayParseInexactly(bytes: Uint8Array): boolean {
  let digits = 0;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (b >= 0x30 && b <= 0x39) {
      if (++digits >= 16) return true;
    } else if ((b | 0x20) === 0x65) { // e or E
      return true;
    } else if (b !== 0x2e) { // a full stop continues the number's digits
      digits = 0;
    }
  }
  return false;
}

/** "line 3 column 10" from a `JSON.parse` error, the only part of it free of the file's text. */
function jsonErrorPlace(error: unknown): string | undefined {
  const m = /\((line [0-9]+ column [0-9]+)\)/.exec(error instanceof Error ? error.message : "");
  return m?.[1];
}

/** The reviver argument that carries a primitive's source text (ES2025 `JSON.parse` source text access). */
interface ReviverContext {
  source?: string;
}

function dataFromJson(bytes: Uint8Array, scale: number): PeerData {
  const text = new TextDecoder().decode(bytes);
  let data: unknown;
  try {
    data = mayParseInexactly(bytes)
      // Each number as its own text, parsed exactly below like a JSON string.
      ? JSON.parse(
        text,
        (_key, value: unknown, context?: ReviverContext) =>
          typeof value === "number" && context?.source !== undefined ? context.source : value,
      )
      : JSON.parse(text);
  } catch (error) {
    // Neither the parser's message nor the error as a cause: they quote the
    // file, and the file is private. Only the place is kept.
    const place = jsonErrorPlace(error);
    throw new InputError(place ? `${place}: not valid JSON` : "not valid JSON");
  }
  if (!Array.isArray(data)) throw new InputError("a JSON input must be an array of numbers");
  const factor = 10 ** scale;
  const values = new Float64Array(data.length);
  data.forEach((item, i) => {
    if (typeof item === "number" && Number.isSafeInteger(item) && Math.abs(item * factor) < LIMIT) {
      values[i] = item * factor;
    } else if (typeof item === "number" || typeof item === "string") {
      // Exact: see mayParseInexactly.
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

/**
 * Whether a CSV cell reads as a number, leniently: a sign, currency or
 * bracket and then a digit ("52", "-.5", "$1,200", "12%", "(5)", "[7").
 * A header row names columns, so such a cell means the first row is data.
 */
const NUMBER_LIKE = /^[[(]*[+\-\u2212]?\p{Sc}?\s*[+\-\u2212]?\.?[0-9]/u;

/** Header names shown in a message, at most this many. */
const NAMES_SHOWN = 10;

function dataFromCsv(text: string, column: string, scale: number): PeerData {
  const lines = text.split(/\r?\n/);
  const header = splitCsvLine(lines[0] ?? "", "line 1").map((h) => h.trim());
  const json = text.trimStart().startsWith("[")
    ? " (it looks like a JSON array, which has no columns: leave out --column)"
    : "";
  // A first row of data must neither reach a message nor be taken for names.
  if (header.some((name) => NUMBER_LIKE.test(name)) || header.join("") === "") {
    throw new InputError(
      `line 1: the file has no header row${
        json || " (--column needs a first row of column names)"
      }`,
    );
  }
  const index = header.indexOf(column);
  if (index < 0) {
    const names = header.slice(0, NAMES_SHOWN).map((name) => JSON.stringify(name)).join(", ");
    const more = header.length > NAMES_SHOWN ? `, and ${header.length - NAMES_SHOWN} more` : "";
    throw new InputError(
      `line 1: no column named ${JSON.stringify(column)}${json || ` (columns: ${names}${more})`}`,
    );
  }
  if (header.indexOf(column, index + 1) >= 0) {
    throw new InputError(`line 1: more than one column is named ${JSON.stringify(column)}`);
  }
  const place = (line: number) => `line ${line}, column ${JSON.stringify(column)}`;
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
    values.push(scaledNumber(fields[index]!.trim(), scale, place(i + 1)));
    where.push(i + 1);
  }
  return { values: Float64Array.from(values), where: (k) => place(where[k]!) };
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
    return dataFromJson(body, options.scale);
  }
  return dataFromLines(body, options.scale);
}

const OPEN_BRACKET = 0x5b;
/** Bytes read at a time when a file is streamed. */
const READ_BYTES = 64 * 1024;

/** Something that fills a buffer, as a file and standard input do. */
interface Reader {
  read(buffer: Uint8Array): Promise<number | null>;
}

/**
 * Feeds a reader to `consume` a chunk at a time, until the end or until
 * `consume` returns `false`; the buffer is reused between calls.
 */
async function eachChunk(
  reader: Reader,
  consume: (chunk: Uint8Array) => boolean | void,
): Promise<void> {
  const buffer = new Uint8Array(READ_BYTES);
  for (let n = await reader.read(buffer); n !== null; n = await reader.read(buffer)) {
    if (consume(buffer.subarray(0, n)) === false) return;
  }
}

async function eachFileChunk(
  path: string,
  consume: (chunk: Uint8Array) => boolean | void,
): Promise<void> {
  using file = await Deno.open(path);
  await eachChunk(file, consume);
}

/** All of a reader's bytes: for a pipe, which can be read only once. */
async function readAll(reader: Reader): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  // Copied: eachChunk reuses its buffer.
  await eachChunk(reader, (chunk) => void chunks.push(chunk.slice()));
  return concat(chunks);
}

function parseWhole(
  bytes: Uint8Array,
  options: { scale: number; column?: string | undefined },
): PeerData {
  const data = dataFromBytes(bytes, options);
  releaseGarbage(bytes.length); // the file's bytes: only the parsed numbers stay
  return data;
}

/**
 * Names of standard input. Deno lets a program with read permission open
 * these only with every permission, so they are read from `Deno.stdin`.
 */
const STDIN_PATHS = new Set(["/dev/stdin", "/dev/fd/0", "/proc/self/fd/0"]);

/** Why a file could not be read, in words; never its contents. */
function readFailure(cause: unknown): string {
  if (cause instanceof Deno.errors.NotFound) return "no such file";
  if (cause instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (cause instanceof Deno.errors.IsADirectory) return "it is a directory";
  if (cause instanceof Deno.errors.NotCapable) {
    // Deno's own text suggests --allow-all, which a user of the binary cannot pass.
    return "sumshare is not allowed to read this special file (pipe the data to --input /dev/stdin)";
  }
  return cause instanceof Error ? cause.message : String(cause);
}

/**
 * Reads and parses `--input FILE`. One number per line, the format a large
 * vector comes in, is streamed twice (count the lines, then parse into a
 * vector of exactly that size), so a million numbers cost one vector of
 * memory and not the file's text as well. JSON and CSV are read whole, and
 * so are pipes, devices and standard input, which can be read only once.
 * A file that cannot be read raises a {@linkcode FileError} saying why.
 */
export async function readInputFile(
  path: string,
  options: { scale: number; column?: string | undefined },
): Promise<PeerData> {
  try {
    if (STDIN_PATHS.has(path)) return parseWhole(await readAll(Deno.stdin), options);
    // CSV is parsed as text: read it whole.
    if (options.column !== undefined || !(await Deno.stat(path)).isFile) {
      return parseWhole(await Deno.readFile(path), options);
    }
    let newlines = 0;
    let bom: boolean | undefined;
    let firstByte: number | undefined; // the first that is not a space
    await eachFileChunk(path, (chunk) => {
      newlines += countNewlines(chunk);
      const first = bom === undefined;
      bom ??= startsWithBom(chunk);
      firstByte ??= chunk.subarray(first && bom ? BOM.length : 0).find((b) => !isSpace(b));
      return firstByte !== OPEN_BRACKET; // JSON: no need to count further
    });
    if (firstByte === OPEN_BRACKET) {
      return parseWhole(await Deno.readFile(path), options);
    }
    const scanner = new LineScanner(newlines + 1, options.scale);
    let skip = bom ? BOM.length : 0;
    await eachFileChunk(path, (chunk) => {
      const body = chunk.subarray(Math.min(skip, chunk.length));
      skip -= chunk.length - body.length;
      scanner.push(body);
    });
    return scanner.finish();
  } catch (cause) {
    if (cause instanceof InputError) throw cause;
    throw new FileError(`Cannot read --input ${path}: ${readFailure(cause)}`, { cause });
  }
}
