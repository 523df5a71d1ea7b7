/**
 * Reading a peer's data: `--value` (one number, or a comma-separated vector),
 * or `--input FILE` as a JSON array, a CSV file with `--column NAME`, or one
 * number per line. Only the text is read here, with where each number came
 * from; the query decides what the numbers must be (see query.ts), so every
 * refusal can name the line.
 *
 * @module
 */

import { InputError, type InputRow } from "./query.ts";

/** The rows of `--value`: one number, or several separated by commas. */
export function rowsFromValue(text: string): InputRow[] {
  return text.split(",").map((part, i, all) => ({
    text: part.trim(),
    where: all.length === 1 ? "--value" : `--value item ${i + 1}`,
  }));
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

/** Parses a file's text into rows. */
export function rowsFromText(
  text: string,
  options: { column?: string | undefined } = {},
): InputRow[] {
  const body = text.replace(/^\uFEFF/, "");
  if (options.column !== undefined) return rowsFromCsv(body, options.column);
  if (body.trimStart().startsWith("[")) return rowsFromJson(body);
  const rows: InputRow[] = [];
  body.split(/\r?\n/).forEach((line, i) => {
    if (line.trim() !== "") rows.push({ text: line.trim(), where: `line ${i + 1}` });
  });
  return rows;
}

function rowsFromJson(text: string): InputRow[] {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (cause) {
    throw new InputError(`not valid JSON: ${(cause as Error).message}`);
  }
  if (!Array.isArray(data)) throw new InputError("a JSON input must be an array of numbers");
  return data.map((item, i) => {
    if (typeof item !== "number" && typeof item !== "string") {
      throw new InputError(`item ${i + 1}: not a number`);
    }
    // String(number) is the shortest text that reads back as the same double.
    return { text: String(item), where: `item ${i + 1}` };
  });
}

function rowsFromCsv(text: string, column: string): InputRow[] {
  const lines = text.split(/\r?\n/);
  const header = splitCsvLine(lines[0] ?? "", "line 1").map((h) => h.trim());
  const index = header.indexOf(column);
  if (index < 0) {
    throw new InputError(
      `line 1: no column named ${JSON.stringify(column)} (columns: ${header.join(", ")})`,
    );
  }
  const rows: InputRow[] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === "") continue;
    const where = `line ${i + 1}`;
    const fields = splitCsvLine(line, where);
    if (fields.length !== header.length) {
      throw new InputError(`${where}: ${fields.length} fields, the header has ${header.length}`);
    }
    rows.push({ text: fields[index]!.trim(), where });
  }
  return rows;
}

/** Reads `--input FILE`. */
export async function readInputFile(
  path: string,
  options: { column?: string | undefined } = {},
): Promise<InputRow[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (cause) {
    throw new InputError(`Cannot read --input ${path}`, { cause });
  }
  try {
    return rowsFromText(text, options);
  } catch (error) {
    if (error instanceof InputError) throw new InputError(`${path}: ${error.message}`);
    throw error;
  }
}
